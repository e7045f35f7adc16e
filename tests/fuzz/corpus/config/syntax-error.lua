return { sinks = 
