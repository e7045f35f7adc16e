-- The benchmark's routing script: 20 rules of every kind that decides per
-- key (prefix, glob, match, tag, type), none of which matches a benchmark
-- key (<group>.kNNNNNNN), then the default route to the sum sink.  So every
-- key is decided by walking all 20 rules, once, when it is first seen.
-- bench.py puts this chunk into the config as its `routes`.
local route = require "switchyard.route"

return {
  route.prefix "debug."                      :drop "debug metrics stay on the host",
  route.prefix "tmp."                        :drop "scratch keys",
  route.prefix "api.internal."               :to "carbon",
  route.prefix "web.frontend."               :sample(0.5) :to "carbon",
  route.prefix "batch.jobs."                 :addprefix "offline." :to "carbon",
  route.glob "api.*.latency"                 :sample(0.1) :to "carbon",
  route.glob "db.*.*.query_time"             :to "carbon",
  route.glob "cache.*.hits"                  :to "carbon",
  route.glob "**.debug"                      :drop "debug suffix",
  route.glob "*.*.internal.*"                :drop "internal calls",
  route.match "^legacy%.(.+)$"               :rename "apps.%1" :to "carbon",
  route.match "%.tmp%d+$"                    :drop "temporary keys",
  route.match "^host%-%w+%.cpu%."            :to "carbon",
  route.match "^(%w+)%.staging%."            :drop "staging",
  route.match "^k8s%.pod%.(.-)%.restarts$"   :rename "kube.%1.restarts" :to "carbon",
  route.tag("env", "dev")                    :drop "dev environment",
  route.tag("env", { "test", "ci" })         :drop "test environments",
  route.tag "trace"                          :to "carbon",
  route.tag("region", "us-west")             :addprefix "usw." :to "carbon",
  route.type "s" :prefix "users."            :to "carbon",
  route.default()                            :to "carbon",
}
