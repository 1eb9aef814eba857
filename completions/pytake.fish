# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pytake_global_optspecs
    string join \n config= color= v/verbose q/quiet data-dir= h/help V/version
end

function __fish_pytake_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pytake_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pytake_using_subcommand
    set -l cmd (__fish_pytake_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pytake -n "__fish_pytake_needs_command" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_needs_command" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_needs_command" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_needs_command" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_needs_command" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pytake -n "__fish_pytake_needs_command" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "serve" -d 'Run the server: event intake, WebSocket fan-out, history'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "tail" -d 'Stream events as they happen; reconnects and resumes without loss'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "presence" -d 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "status" -d 'One screen on a server\'s health: version, uptime, store, bus, connections, events/s'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "metrics" -d 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "export" -d 'Export the time series, events or a campaign report, streamed to a file or stdout'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "queue" -d 'The job queue: stats, jobs, dead letters; retry, purge, enqueue'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "alerts" -d 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "loadtest" -d 'WebSocket load against a server (or one it spawns), with thresholds for CI'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "token" -d 'Create tokens'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "config" -d 'Show, check and write the configuration'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c pytake -n "__fish_pytake_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l listen -d 'Address to listen on, HOST:PORT; port 0 picks a free one [env: PYTAKE_LISTEN] [default: 127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l log-format -d 'Log lines as readable text or one JSON object per line [env: PYTAKE_LOG_FORMAT] [default: text]' -r -f -a "text\t'Readable lines'
json\t'One JSON object per line, for log shippers'"
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l rate-limit-viewer -d 'REST requests per minute per viewer token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_VIEWER] [default: 60]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l rate-limit-operator -d 'REST requests per minute per operator token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_OPERATOR] [default: 60]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l rate-limit-admin -d 'REST requests per minute per admin token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_ADMIN] [default: 60000]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l rate-limit-service -d 'REST requests per minute per service token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_SERVICE] [default: 60000]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l trusted-proxies -d 'Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client [env: PYTAKE_TRUSTED_PROXIES] [default: []]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l secret -d 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l secret-file -d 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l token-leeway -d 'Clock skew tolerated on a token\'s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l token-audience -d 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l token-issuer -d 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l token-max-lifetime -d 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l rate-limit -d 'Client messages per minute per WebSocket connection [env: PYTAKE_RATE_LIMIT] [default: 100]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l max-frame-bytes -d 'Largest WebSocket frame a client may send, in bytes [env: PYTAKE_MAX_FRAME_BYTES] [default: 65536]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l outbound-queue -d 'Frames queued per connection before it is closed as a slow consumer (4009) [env: PYTAKE_OUTBOUND_QUEUE] [default: 1024]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l auth-timeout -d 'Close connections that have not authenticated by then (4001) [env: PYTAKE_AUTH_TIMEOUT] [default: 10s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l ping-interval -d 'How often the server pings each connection [env: PYTAKE_PING_INTERVAL] [default: 25s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l idle-timeout -d 'Close connections silent for this long [env: PYTAKE_IDLE_TIMEOUT] [default: 30s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l write-stall -d 'Close a connection as a slow consumer (4009) when a write makes no progress for this long [env: PYTAKE_WRITE_STALL] [default: 10s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l compression -d 'Compress WebSocket messages (permessage-deflate) for clients that offer it; false turns it off [env: PYTAKE_COMPRESSION] [default: true]' -r -f -a "true\t''
false\t''"
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l max-connections -d 'Connections (WebSocket and SSE) this node serves at once; over it, 503 [env: PYTAKE_MAX_CONNECTIONS] [default: min(20000, 80% of the open-file limit)]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l max-connections-per-tenant -d 'Connections one tenant may hold on this node; over it, 503 (or close 1013 after Auth) [env: PYTAKE_MAX_CONNECTIONS_PER_TENANT] [default: max_connections]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l max-unauthenticated-per-address -d 'Connections not yet authenticated one source address may hold; over it, 503 [env: PYTAKE_MAX_UNAUTHENTICATED_PER_ADDRESS] [default: 64]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l presence-grace -d 'Keep a user online this long after its last connection closed (0s: at once) [env: PYTAKE_PRESENCE_GRACE] [default: 5s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l presence-ttl -d 'With several nodes: a node whose presence heartbeat stops this long has its users go offline [env: PYTAKE_PRESENCE_TTL] [default: 15s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l store -d 'Event store URL: sqlite://PATH (one node) or postgres://USER:PASSWORD@HOST:PORT/DATABASE (several) [env: PYTAKE_STORE] [default: sqlite://<data-dir>/pytake.db]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l store-pool-size -d 'Most PostgreSQL connections this node opens [env: PYTAKE_STORE_POOL_SIZE] [default: 16]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l bus -d 'Event bus: memory (one node) or redis://HOST:PORT (several) [env: PYTAKE_BUS] [default: memory]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l metrics-push-interval -d 'How often dashboard subscribers get a Metrics message (when something changed) [env: PYTAKE_METRICS_PUSH_INTERVAL] [default: 2s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l metrics-campaign-throttle -d 'Least time between two pushes of one campaign\'s figures; lifecycle changes go at once [env: PYTAKE_METRICS_CAMPAIGN_THROTTLE] [default: 2s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l metrics-active-window -d 'A conversation idle this long is no longer active [env: PYTAKE_METRICS_ACTIVE_WINDOW] [default: 1d]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l queue-concurrency -d 'Jobs this node runs at once [env: PYTAKE_QUEUE_CONCURRENCY] [default: 32]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l queue-batch-size -d 'Most jobs one lease takes [env: PYTAKE_QUEUE_BATCH_SIZE] [default: 10]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l queue-poll-interval -d 'How often idle workers look for due jobs (a fallback: enqueues wake them at once) [env: PYTAKE_QUEUE_POLL_INTERVAL] [default: 1s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l queue-lease -d 'How long a worker holds a job; a job whose worker died runs again after it [env: PYTAKE_QUEUE_LEASE] [default: 30s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l queue-max-attempts -d 'Runs before a failing job is dead [env: PYTAKE_QUEUE_MAX_ATTEMPTS] [default: 3]' -r
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l demo -d 'Feed realistic synthetic traffic of three tenants (acme, globex, initech)'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -l stop-when-stdin-closes -d 'Stop when stdin closes. For `loadtest --spawn`: its server then stops even when loadtest is killed with SIGKILL (the kernel closes the pipe), which no signal handler can see. Hidden: a server run by a service manager has a stdin that is closed from the start'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pytake -n "__fish_pytake_using_subcommand serve" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s r -l room -d 'Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence, campaign:ID, conversation:ID, user:ID [default: every room]' -r -f -a "dashboard\t''
conversations\t''
campaigns\t''
erp\t''
ai\t''
alerts\t''
presence\t''"
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s t -l type -d 'Only events of this type, repeatable (MessageSent, ERPCall, ...)' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l tenant -d 'Tenant to follow (admin tokens; others see their own tenant only) [default: every tenant]' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l since -d 'Start after this event id, or at what arrived this long ago (10m, 2h) or since this RFC 3339 time (2026-12-02T10:00:00Z) [default: now]' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l until -d 'Print only events stamped up to this RFC 3339 time or this long ago (10m), then exit; a time already past implies --no-follow' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l tail -d 'Print the last N events first (0: only new ones) [default: 0]' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s n -l count -d 'Exit after printing N events' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand tail" -l no-follow -d 'Print what --since or --tail selects, then exit without waiting for new events'
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand tail" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l tenant -d 'The tenant (a tenant token sees only its own; an admin may name any, or none for all)' -r
complete -c pytake -n "__fish_pytake_using_subcommand presence" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand presence" -l watch -d 'After the list, print each presence change as it happens (until Ctrl-C)'
complete -c pytake -n "__fish_pytake_using_subcommand presence" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand presence" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand presence" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand presence" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand status" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand status" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand status" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand status" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand status" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand status" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand status" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand status" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand status" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand status" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand status" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "overview" -d 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "series" -d 'A time series: one row per bucket, one column per metric'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "campaigns" -d 'Every campaign\'s progress and health, with the tenant\'s summary'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "campaign" -d 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "system" -d 'This node: CPU, memory, RSS, connections, the store\'s pool, uptime, subsystems'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and not __fish_seen_subcommand_from overview series campaigns campaign system help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from overview" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l period -d '1h, 24h, 7d or 30d [default: 24h]' -r -f -a "1h\t''
24h\t''
7d\t''
30d\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s m -l metric -l metrics -d 'Metric to show, repeatable or comma-separated [default: the dashboard\'s figures]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from series" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l limit -d 'Show the N most recent campaigns [default: 100]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaigns" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from campaign" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l tenant -d 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from system" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "overview" -d 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "series" -d 'A time series: one row per bucket, one column per metric'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "campaigns" -d 'Every campaign\'s progress and health, with the tenant\'s summary'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "campaign" -d 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "system" -d 'This node: CPU, memory, RSS, connections, the store\'s pool, uptime, subsystems'
complete -c pytake -n "__fish_pytake_using_subcommand metrics; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l format -d 'csv, json or ndjson [default: csv]' -r -f -a "csv\t''
json\t''
ndjson\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l period -d '1h, 24h, 7d or 30d' -r -f -a "1h\t''
24h\t''
7d\t''
30d\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s m -l metrics -l metric -d 'Metric to export, repeatable or comma-separated [default: the dashboard\'s figures]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l tenant -d 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s o -l output -d 'Write to FILE (complete, or not at all) instead of stdout' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -f -a "metrics" -d 'The dashboard\'s time series: a row per bucket, a column per metric (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -f -a "events" -d 'Stored events of a time range, in id order, of any volume'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -f -a "campaign" -d 'A campaign\'s report: its figures, its performance and its events, one JSON document'
complete -c pytake -n "__fish_pytake_using_subcommand export; and not __fish_seen_subcommand_from metrics events campaign help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l format -d 'csv, json or ndjson [default: csv]' -r -f -a "csv\t''
json\t''
ndjson\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l period -d '1h, 24h, 7d or 30d' -r -f -a "1h\t''
24h\t''
7d\t''
30d\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s m -l metrics -l metric -d 'Metric to export, repeatable or comma-separated [default: the dashboard\'s figures]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l tenant -d 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s o -l output -d 'Write to FILE (complete, or not at all) instead of stdout' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from metrics" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l since -d 'From what arrived this long ago (10m, 2h) or at this RFC 3339 time [default: the first event]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l until -d 'Up to what arrived this long ago or at this RFC 3339 time, excluded [default: now]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s t -l type -d 'Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s r -l room -d 'Only events of this room, repeatable (alerts, campaign:ID, ...)' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l tenant -d 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l format -d 'ndjson (an event per line), csv or json (one array)' -r -f -a "ndjson\t''
csv\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s o -l output -d 'Write to FILE (complete, or not at all) instead of stdout' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from events" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l tenant -d 'The campaign\'s tenant (required with an admin token) [default: the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -s o -l output -d 'Write to FILE (complete, or not at all) instead of stdout' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from campaign" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "metrics" -d 'The dashboard\'s time series: a row per bucket, a column per metric (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "events" -d 'Stored events of a time range, in id order, of any volume'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "campaign" -d 'A campaign\'s report: its figures, its performance and its events, one JSON document'
complete -c pytake -n "__fish_pytake_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "stats" -d 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "list" -d 'Jobs, newest first, with their attempts and last error'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "dead" -d 'The dead letters: jobs out of attempts (or that can never run), with their last error'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "show" -d 'One job: its state, attempts, times, whole last error and payload'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "retry" -d 'Run a dead job again from its first attempt, or every dead job (of a kind)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "purge" -d 'Delete done or dead jobs last updated longer ago than a duration'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "enqueue" -d 'Add a job (noop to check the queue end to end, http to deliver a request)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and not __fish_seen_subcommand_from stats list dead show retry purge enqueue help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from stats" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l status -d 'Only jobs in this state' -r -f -a "pending\t''
running\t''
retrying\t''
done\t''
dead\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l kind -d 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)' -r -f -a "noop\t''
http\t''
webhook.whatsapp\t''
webhook.evolution\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l limit -d 'Show the newest N' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l before -d 'Only jobs with an id below ID: the next page' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l kind -d 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)' -r -f -a "noop\t''
http\t''
webhook.whatsapp\t''
webhook.evolution\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l limit -d 'Show the newest N' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l before -d 'Only jobs with an id below ID: the next page' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from dead" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l kind -d 'With --all-dead: only dead jobs of this kind' -r -f -a "noop\t''
http\t''
webhook.whatsapp\t''
webhook.evolution\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -l all-dead -d 'Every dead job instead of one'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from retry" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l status -d 'Which finished jobs: done or dead' -r -f -a "done\t''
dead\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l older-than -d 'Only jobs last updated longer ago than this (7d, 12h; 0s: all of them)' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l kind -d 'The handler that runs it' -r -f -a "noop\t''
http\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l payload -d 'The job\'s payload: JSON, or @FILE to read it from a file (http: {"url", "method"?, "headers"?, "body"})' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l priority -d 'Higher runs first [default: 0]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l run-at -d 'Not before this RFC 3339 time, or this long from now (10m) [default: now]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l max-attempts -d 'Runs before it is dead [default: the server\'s [queue] max_attempts]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l correlation-id -d 'Ties the job to what caused it, for tracing (1 to 128 characters)' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from enqueue" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "list" -d 'Jobs, newest first, with their attempts and last error'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "dead" -d 'The dead letters: jobs out of attempts (or that can never run), with their last error'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "show" -d 'One job: its state, attempts, times, whole last error and payload'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Run a dead job again from its first attempt, or every dead job (of a kind)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Delete done or dead jobs last updated longer ago than a duration'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "enqueue" -d 'Add a job (noop to check the queue end to end, http to deliver a request)'
complete -c pytake -n "__fish_pytake_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l state -d 'Only alerts in this state' -r -f -a "pending\t''
firing\t''
resolved\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l tenant -d 'Only this tenant\'s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l since -d 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l limit -d 'Show the newest N (up to 1000)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "list" -d 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "incidents" -d 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "rules" -d 'The rules, and one shown, added, removed, enabled or disabled'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "ack" -d 'Acknowledge an incident, by its id or one of its alerts\': its repeats stop'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "silence" -d 'Leave a rule\'s or a tenant\'s alerts out of notifications for a while'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "silences" -d 'The running silences (--all: ended ones too)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "unsilence" -d 'End a silence now'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and not __fish_seen_subcommand_from list incidents rules ack silence silences unsilence help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l state -d 'Only alerts in this state' -r -f -a "pending\t''
firing\t''
resolved\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l tenant -d 'Only this tenant\'s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l since -d 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l limit -d 'Show the newest N (up to 1000)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l watch -d 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l tenant -d 'Only this tenant\'s incidents (admin tokens; other tokens see their own) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l since -d 'Resolved incidents too if they resolved since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l limit -d 'Show the newest N (up to 1000)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from incidents" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l tenant -d 'The rules that apply to this tenant (admin tokens): its own and every tenant\'s [default: every rule, or the token\'s tenant\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "list" -d 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "show" -d 'One rule, all of it'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "add" -d 'Add a rule, from flags or from the API\'s JSON in a file; prints it as stored'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "rm" -d 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "enable" -d 'Evaluate a disabled rule again'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "disable" -d 'Stop evaluating a rule, keeping it: its firing alerts resolve'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from rules" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from ack" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l rule -d 'The rule to silence (with --tenant: for that tenant only)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l tenant -d 'The tenant to silence (with --rule: that rule only)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l for -d 'How long, from now (30m, 2h, 1d)' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l reason -d 'Why, for whoever reads `pytake alerts silences`' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silence" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l tenant -d 'Only this tenant\'s silences and those of every tenant (admin tokens) [default: every tenant, or the token\'s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -l all -d 'Ended silences too, while the server keeps them'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from silences" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from unsilence" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "list" -d 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "incidents" -d 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "rules" -d 'The rules, and one shown, added, removed, enabled or disabled'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "ack" -d 'Acknowledge an incident, by its id or one of its alerts\': its repeats stop'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "silence" -d 'Leave a rule\'s or a tenant\'s alerts out of notifications for a while'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "silences" -d 'The running silences (--all: ended ones too)'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "unsilence" -d 'End a silence now'
complete -c pytake -n "__fish_pytake_using_subcommand alerts; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l connections -d 'WebSocket connections: held for the whole run (closed model) or opened during it (--arrival-rate)' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l ramp -d 'Time over which the connections are opened' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l rate -d 'Events published per second (batched above 200/s)' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l duration -d 'How long events are published' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l rooms -d 'Rooms the connections and events are spread over (per tenant)' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l tenants -d 'Tenants the connections and events are spread over' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l payload-bytes -d 'Bytes of padding in each event\'s data' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l publishers -d 'Concurrent POSTs in flight: enough that a slow server delays events (and shows it as latency) instead of capping the publish rate' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l arrival-rate -d 'Open model: connections arrive at this many per second during the run' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l node -d 'Another node of the server\'s cluster, repeatable: the load is spread over --server and every --node' -r -f
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l threshold -d 'Pass/fail criterion, repeatable: \'p99<50ms\', \'loss==0\', \'connect_errors==0\', \'deliveries_per_s>=100000\'; an unmet one exits 99' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l junit -d 'Also write the result as JUnit XML, for CI systems' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''
csv\t''"
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l server -d 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l token -d 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]' -r
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l token-file -d 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -l spawn -d 'Start a pytake serve on a free loopback port with a temporary data dir, test it, stop it (also on Ctrl-C or SIGTERM)'
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pytake -n "__fish_pytake_using_subcommand loadtest" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -f -a "create" -d 'Print a new token signed with the server\'s secret'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -f -a "verify" -d 'Show a token\'s claims and whether this server\'s secret and rules accept it'
complete -c pytake -n "__fish_pytake_using_subcommand token; and not __fish_seen_subcommand_from create verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l tenant -d 'Tenant the token speaks for (required unless --role admin)' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l role -d 'admin (every tenant), operator (read and publish), viewer (read), service (publish)' -r -f -a "admin\t''
operator\t''
viewer\t''
service\t''"
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l sub -d 'Who the token is for, shown in the server\'s log [default: $USER]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l ttl -d 'Lifetime, e.g. 15m, 24h, 30d' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l secret -d 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l secret-file -d 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l token-leeway -d 'Clock skew tolerated on a token\'s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l token-audience -d 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l token-issuer -d 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l token-max-lifetime -d 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -s o -l output -d 'Output format [default: table on a terminal, json when piped]' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l secret -d 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l secret-file -d 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l token-leeway -d 'Clock skew tolerated on a token\'s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l token-audience -d 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l token-issuer -d 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l token-max-lifetime -d 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]' -r
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Print a new token signed with the server\'s secret'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Show a token\'s claims and whether this server\'s secret and rules accept it'
complete -c pytake -n "__fish_pytake_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -f -a "show" -d 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -f -a "check" -d 'Check a config file as `pytake serve` would read it'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -f -a "init" -d 'Write a commented config file with every setting at its default'
complete -c pytake -n "__fish_pytake_using_subcommand config; and not __fish_seen_subcommand_from show check init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format: table (TOML text, also when piped) or json' -r -f -a "table\t''
json\t''"
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -l origin -d 'Say where each value came from: a flag, a variable, the file (with its line) or the default'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from init" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check a config file as `pytake serve` would read it'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "init" -d 'Write a commented config file with every setting at its default'
complete -c pytake -n "__fish_pytake_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand completions" -l config -d 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand completions" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pytake -n "__fish_pytake_using_subcommand completions" -l data-dir -d 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]' -r -F
complete -c pytake -n "__fish_pytake_using_subcommand completions" -s v -l verbose -d 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
complete -c pytake -n "__fish_pytake_using_subcommand completions" -s q -l quiet -d 'Less log output on stderr, a level per -q, down to none'
complete -c pytake -n "__fish_pytake_using_subcommand completions" -s h -l help -d 'Print help'
complete -c pytake -n "__fish_pytake_using_subcommand completions" -s V -l version -d 'Print version'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "serve" -d 'Run the server: event intake, WebSocket fan-out, history'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "tail" -d 'Stream events as they happen; reconnects and resumes without loss'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "presence" -d 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "status" -d 'One screen on a server\'s health: version, uptime, store, bus, connections, events/s'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "metrics" -d 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "export" -d 'Export the time series, events or a campaign report, streamed to a file or stdout'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "queue" -d 'The job queue: stats, jobs, dead letters; retry, purge, enqueue'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "alerts" -d 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "loadtest" -d 'WebSocket load against a server (or one it spawns), with thresholds for CI'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "token" -d 'Create tokens'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "config" -d 'Show, check and write the configuration'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c pytake -n "__fish_pytake_using_subcommand help; and not __fish_seen_subcommand_from serve tail presence status metrics export queue alerts loadtest token config completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from metrics" -f -a "overview" -d 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from metrics" -f -a "series" -d 'A time series: one row per bucket, one column per metric'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from metrics" -f -a "campaigns" -d 'Every campaign\'s progress and health, with the tenant\'s summary'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from metrics" -f -a "campaign" -d 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from metrics" -f -a "system" -d 'This node: CPU, memory, RSS, connections, the store\'s pool, uptime, subsystems'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "metrics" -d 'The dashboard\'s time series: a row per bucket, a column per metric (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "events" -d 'Stored events of a time range, in id order, of any volume'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "campaign" -d 'A campaign\'s report: its figures, its performance and its events, one JSON document'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "stats" -d 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "list" -d 'Jobs, newest first, with their attempts and last error'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "dead" -d 'The dead letters: jobs out of attempts (or that can never run), with their last error'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "show" -d 'One job: its state, attempts, times, whole last error and payload'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "retry" -d 'Run a dead job again from its first attempt, or every dead job (of a kind)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "purge" -d 'Delete done or dead jobs last updated longer ago than a duration'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "enqueue" -d 'Add a job (noop to check the queue end to end, http to deliver a request)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "list" -d 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "incidents" -d 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "rules" -d 'The rules, and one shown, added, removed, enabled or disabled'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "ack" -d 'Acknowledge an incident, by its id or one of its alerts\': its repeats stop'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "silence" -d 'Leave a rule\'s or a tenant\'s alerts out of notifications for a while'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "silences" -d 'The running silences (--all: ended ones too)'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from alerts" -f -a "unsilence" -d 'End a silence now'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Print a new token signed with the server\'s secret'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "verify" -d 'Show a token\'s claims and whether this server\'s secret and rules accept it'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Check a config file as `pytake serve` would read it'
complete -c pytake -n "__fish_pytake_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "init" -d 'Write a commented config file with every setting at its default'
