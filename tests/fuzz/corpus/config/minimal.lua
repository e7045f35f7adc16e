return { sinks = { out = { plugin = "console" } } }
