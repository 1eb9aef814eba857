
use builtin;
use str;

set edit:completion:arg-completer[pytake] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'pytake'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'pytake'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the server: event intake, WebSocket fan-out, history'
            cand tail 'Stream events as they happen; reconnects and resumes without loss'
            cand presence 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves'
            cand status 'One screen on a server''s health: version, uptime, store, bus, connections, events/s'
            cand metrics 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV'
            cand export 'Export the time series, events or a campaign report, streamed to a file or stdout'
            cand queue 'The job queue: stats, jobs, dead letters; retry, purge, enqueue'
            cand alerts 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence'
            cand loadtest 'WebSocket load against a server (or one it spawns), with thresholds for CI'
            cand token 'Create tokens'
            cand config 'Show, check and write the configuration'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;serve'= {
            cand --listen 'Address to listen on, HOST:PORT; port 0 picks a free one [env: PYTAKE_LISTEN] [default: 127.0.0.1:8080]'
            cand --log-format 'Log lines as readable text or one JSON object per line [env: PYTAKE_LOG_FORMAT] [default: text]'
            cand --rate-limit-viewer 'REST requests per minute per viewer token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_VIEWER] [default: 60]'
            cand --rate-limit-operator 'REST requests per minute per operator token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_OPERATOR] [default: 60]'
            cand --rate-limit-admin 'REST requests per minute per admin token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_ADMIN] [default: 60000]'
            cand --rate-limit-service 'REST requests per minute per service token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_SERVICE] [default: 60000]'
            cand --trusted-proxies 'Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client [env: PYTAKE_TRUSTED_PROXIES] [default: []]'
            cand --secret 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]'
            cand --secret-file 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]'
            cand --token-leeway 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]'
            cand --token-audience 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]'
            cand --token-issuer 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]'
            cand --token-max-lifetime 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]'
            cand --rate-limit 'Client messages per minute per WebSocket connection [env: PYTAKE_RATE_LIMIT] [default: 100]'
            cand --max-frame-bytes 'Largest WebSocket frame a client may send, in bytes [env: PYTAKE_MAX_FRAME_BYTES] [default: 65536]'
            cand --outbound-queue 'Frames queued per connection before it is closed as a slow consumer (4009) [env: PYTAKE_OUTBOUND_QUEUE] [default: 1024]'
            cand --auth-timeout 'Close connections that have not authenticated by then (4001) [env: PYTAKE_AUTH_TIMEOUT] [default: 10s]'
            cand --ping-interval 'How often the server pings each connection [env: PYTAKE_PING_INTERVAL] [default: 25s]'
            cand --idle-timeout 'Close connections silent for this long [env: PYTAKE_IDLE_TIMEOUT] [default: 30s]'
            cand --write-stall 'Close a connection as a slow consumer (4009) when a write makes no progress for this long [env: PYTAKE_WRITE_STALL] [default: 10s]'
            cand --compression 'Compress WebSocket messages (permessage-deflate) for clients that offer it; false turns it off [env: PYTAKE_COMPRESSION] [default: true]'
            cand --max-connections 'Connections (WebSocket and SSE) this node serves at once; over it, 503 [env: PYTAKE_MAX_CONNECTIONS] [default: min(20000, 80% of the open-file limit)]'
            cand --max-connections-per-tenant 'Connections one tenant may hold on this node; over it, 503 (or close 1013 after Auth) [env: PYTAKE_MAX_CONNECTIONS_PER_TENANT] [default: max_connections]'
            cand --max-unauthenticated-per-address 'Connections not yet authenticated one source address may hold; over it, 503 [env: PYTAKE_MAX_UNAUTHENTICATED_PER_ADDRESS] [default: 64]'
            cand --presence-grace 'Keep a user online this long after its last connection closed (0s: at once) [env: PYTAKE_PRESENCE_GRACE] [default: 5s]'
            cand --presence-ttl 'With several nodes: a node whose presence heartbeat stops this long has its users go offline [env: PYTAKE_PRESENCE_TTL] [default: 15s]'
            cand --store 'Event store URL: sqlite://PATH (one node) or postgres://USER:PASSWORD@HOST:PORT/DATABASE (several) [env: PYTAKE_STORE] [default: sqlite://<data-dir>/pytake.db]'
            cand --store-pool-size 'Most PostgreSQL connections this node opens [env: PYTAKE_STORE_POOL_SIZE] [default: 16]'
            cand --bus 'Event bus: memory (one node) or redis://HOST:PORT (several) [env: PYTAKE_BUS] [default: memory]'
            cand --metrics-push-interval 'How often dashboard subscribers get a Metrics message (when something changed) [env: PYTAKE_METRICS_PUSH_INTERVAL] [default: 2s]'
            cand --metrics-campaign-throttle 'Least time between two pushes of one campaign''s figures; lifecycle changes go at once [env: PYTAKE_METRICS_CAMPAIGN_THROTTLE] [default: 2s]'
            cand --metrics-active-window 'A conversation idle this long is no longer active [env: PYTAKE_METRICS_ACTIVE_WINDOW] [default: 1d]'
            cand --queue-concurrency 'Jobs this node runs at once [env: PYTAKE_QUEUE_CONCURRENCY] [default: 32]'
            cand --queue-batch-size 'Most jobs one lease takes [env: PYTAKE_QUEUE_BATCH_SIZE] [default: 10]'
            cand --queue-poll-interval 'How often idle workers look for due jobs (a fallback: enqueues wake them at once) [env: PYTAKE_QUEUE_POLL_INTERVAL] [default: 1s]'
            cand --queue-lease 'How long a worker holds a job; a job whose worker died runs again after it [env: PYTAKE_QUEUE_LEASE] [default: 30s]'
            cand --queue-max-attempts 'Runs before a failing job is dead [env: PYTAKE_QUEUE_MAX_ATTEMPTS] [default: 3]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --demo 'Feed realistic synthetic traffic of three tenants (acme, globex, initech)'
            cand --stop-when-stdin-closes 'Stop when stdin closes. For `loadtest --spawn`: its server then stops even when loadtest is killed with SIGKILL (the kernel closes the pipe), which no signal handler can see. Hidden: a server run by a service manager has a stdin that is closed from the start'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;tail'= {
            cand -r 'Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence, campaign:ID, conversation:ID, user:ID [default: every room]'
            cand --room 'Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence, campaign:ID, conversation:ID, user:ID [default: every room]'
            cand -t 'Only events of this type, repeatable (MessageSent, ERPCall, ...)'
            cand --type 'Only events of this type, repeatable (MessageSent, ERPCall, ...)'
            cand --tenant 'Tenant to follow (admin tokens; others see their own tenant only) [default: every tenant]'
            cand --since 'Start after this event id, or at what arrived this long ago (10m, 2h) or since this RFC 3339 time (2026-12-02T10:00:00Z) [default: now]'
            cand --until 'Print only events stamped up to this RFC 3339 time or this long ago (10m), then exit; a time already past implies --no-follow'
            cand --tail 'Print the last N events first (0: only new ones) [default: 0]'
            cand -n 'Exit after printing N events'
            cand --count 'Exit after printing N events'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --no-follow 'Print what --since or --tail selects, then exit without waiting for new events'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;presence'= {
            cand --tenant 'The tenant (a tenant token sees only its own; an admin may name any, or none for all)'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --watch 'After the list, print each presence change as it happens (until Ctrl-C)'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;status'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics'= {
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand overview 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
            cand series 'A time series: one row per bucket, one column per metric'
            cand campaigns 'Every campaign''s progress and health, with the tenant''s summary'
            cand campaign 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
            cand system 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;metrics;overview'= {
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics;series'= {
            cand --period '1h, 24h, 7d or 30d [default: 24h]'
            cand -m 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metric 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metrics 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics;campaigns'= {
            cand --limit 'Show the N most recent campaigns [default: 100]'
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics;campaign'= {
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics;system'= {
            cand --tenant 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;metrics;help'= {
            cand overview 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
            cand series 'A time series: one row per bucket, one column per metric'
            cand campaigns 'Every campaign''s progress and health, with the tenant''s summary'
            cand campaign 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
            cand system 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;metrics;help;overview'= {
        }
        &'pytake;metrics;help;series'= {
        }
        &'pytake;metrics;help;campaigns'= {
        }
        &'pytake;metrics;help;campaign'= {
        }
        &'pytake;metrics;help;system'= {
        }
        &'pytake;metrics;help;help'= {
        }
        &'pytake;export'= {
            cand --format 'csv, json or ndjson [default: csv]'
            cand --period '1h, 24h, 7d or 30d'
            cand -m 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metrics 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metric 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --tenant 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]'
            cand -o 'Write to FILE (complete, or not at all) instead of stdout'
            cand --output 'Write to FILE (complete, or not at all) instead of stdout'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand metrics 'The dashboard''s time series: a row per bucket, a column per metric (the default)'
            cand events 'Stored events of a time range, in id order, of any volume'
            cand campaign 'A campaign''s report: its figures, its performance and its events, one JSON document'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;export;metrics'= {
            cand --format 'csv, json or ndjson [default: csv]'
            cand --period '1h, 24h, 7d or 30d'
            cand -m 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metrics 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --metric 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]'
            cand --tenant 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]'
            cand -o 'Write to FILE (complete, or not at all) instead of stdout'
            cand --output 'Write to FILE (complete, or not at all) instead of stdout'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;export;events'= {
            cand --since 'From what arrived this long ago (10m, 2h) or at this RFC 3339 time [default: the first event]'
            cand --until 'Up to what arrived this long ago or at this RFC 3339 time, excluded [default: now]'
            cand -t 'Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)'
            cand --type 'Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)'
            cand -r 'Only events of this room, repeatable (alerts, campaign:ID, ...)'
            cand --room 'Only events of this room, repeatable (alerts, campaign:ID, ...)'
            cand --tenant 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]'
            cand --format 'ndjson (an event per line), csv or json (one array)'
            cand -o 'Write to FILE (complete, or not at all) instead of stdout'
            cand --output 'Write to FILE (complete, or not at all) instead of stdout'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;export;campaign'= {
            cand --tenant 'The campaign''s tenant (required with an admin token) [default: the token''s]'
            cand -o 'Write to FILE (complete, or not at all) instead of stdout'
            cand --output 'Write to FILE (complete, or not at all) instead of stdout'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;export;help'= {
            cand metrics 'The dashboard''s time series: a row per bucket, a column per metric (the default)'
            cand events 'Stored events of a time range, in id order, of any volume'
            cand campaign 'A campaign''s report: its figures, its performance and its events, one JSON document'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;export;help;metrics'= {
        }
        &'pytake;export;help;events'= {
        }
        &'pytake;export;help;campaign'= {
        }
        &'pytake;export;help;help'= {
        }
        &'pytake;queue'= {
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand stats 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
            cand list 'Jobs, newest first, with their attempts and last error'
            cand dead 'The dead letters: jobs out of attempts (or that can never run), with their last error'
            cand show 'One job: its state, attempts, times, whole last error and payload'
            cand retry 'Run a dead job again from its first attempt, or every dead job (of a kind)'
            cand purge 'Delete done or dead jobs last updated longer ago than a duration'
            cand enqueue 'Add a job (noop to check the queue end to end, http to deliver a request)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;queue;stats'= {
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;list'= {
            cand --status 'Only jobs in this state'
            cand --kind 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)'
            cand --limit 'Show the newest N'
            cand --before 'Only jobs with an id below ID: the next page'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;dead'= {
            cand --kind 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)'
            cand --limit 'Show the newest N'
            cand --before 'Only jobs with an id below ID: the next page'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;show'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;retry'= {
            cand --kind 'With --all-dead: only dead jobs of this kind'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --all-dead 'Every dead job instead of one'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;purge'= {
            cand --status 'Which finished jobs: done or dead'
            cand --older-than 'Only jobs last updated longer ago than this (7d, 12h; 0s: all of them)'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;enqueue'= {
            cand --kind 'The handler that runs it'
            cand --payload 'The job''s payload: JSON, or @FILE to read it from a file (http: {"url", "method"?, "headers"?, "body"})'
            cand --priority 'Higher runs first [default: 0]'
            cand --run-at 'Not before this RFC 3339 time, or this long from now (10m) [default: now]'
            cand --max-attempts 'Runs before it is dead [default: the server''s [queue] max_attempts]'
            cand --correlation-id 'Ties the job to what caused it, for tracing (1 to 128 characters)'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;queue;help'= {
            cand stats 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
            cand list 'Jobs, newest first, with their attempts and last error'
            cand dead 'The dead letters: jobs out of attempts (or that can never run), with their last error'
            cand show 'One job: its state, attempts, times, whole last error and payload'
            cand retry 'Run a dead job again from its first attempt, or every dead job (of a kind)'
            cand purge 'Delete done or dead jobs last updated longer ago than a duration'
            cand enqueue 'Add a job (noop to check the queue end to end, http to deliver a request)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;queue;help;stats'= {
        }
        &'pytake;queue;help;list'= {
        }
        &'pytake;queue;help;dead'= {
        }
        &'pytake;queue;help;show'= {
        }
        &'pytake;queue;help;retry'= {
        }
        &'pytake;queue;help;purge'= {
        }
        &'pytake;queue;help;enqueue'= {
        }
        &'pytake;queue;help;help'= {
        }
        &'pytake;alerts'= {
            cand --state 'Only alerts in this state'
            cand --tenant 'Only this tenant''s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --since 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]'
            cand --limit 'Show the newest N (up to 1000)'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
            cand incidents 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
            cand rules 'The rules, and one shown, added, removed, enabled or disabled'
            cand ack 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop'
            cand silence 'Leave a rule''s or a tenant''s alerts out of notifications for a while'
            cand silences 'The running silences (--all: ended ones too)'
            cand unsilence 'End a silence now'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;alerts;list'= {
            cand --state 'Only alerts in this state'
            cand --tenant 'Only this tenant''s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --since 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]'
            cand --limit 'Show the newest N (up to 1000)'
            cand --watch 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;incidents'= {
            cand --tenant 'Only this tenant''s incidents (admin tokens; other tokens see their own) [default: every tenant, or the token''s]'
            cand --since 'Resolved incidents too if they resolved since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]'
            cand --limit 'Show the newest N (up to 1000)'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules'= {
            cand --tenant 'The rules that apply to this tenant (admin tokens): its own and every tenant''s [default: every rule, or the token''s tenant''s]'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)'
            cand show 'One rule, all of it'
            cand add 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored'
            cand rm 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history'
            cand enable 'Evaluate a disabled rule again'
            cand disable 'Stop evaluating a rule, keeping it: its firing alerts resolve'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;alerts;rules;list'= {
            cand --tenant 'The rules that apply to this tenant (admin tokens): its own and every tenant''s [default: every rule, or the token''s tenant''s]'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;show'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;add'= {
            cand --file 'The rule as the API''s JSON, in FILE or on stdin (-), instead of the flags below'
            cand --id 'The rule''s id: A-Z a-z 0-9 _ - . [default: made from the name, `Queue backlog` -> queue_backlog]'
            cand --name 'What notifications call it'
            cand --condition 'What it measures'
            cand --metric 'Which figure, for conditions that have several (SystemResourceUsage: cpu, memory; ErpLatency: p95, p50, avg; Metric: a dashboard figure) [default: the condition''s first]'
            cand --comparator 'How the value compares with the threshold to fire (gt, ge, lt, le also do) [default: >]'
            cand --threshold 'The threshold'
            cand --window 'What rates and sums are measured over: whole minutes, 1m to 1h [default: 5m]'
            cand --for 'How long the condition must hold before it fires, and be clear before it resolves (0s: at once) [default: 1m]'
            cand --severity 'How urgent [default: warning]'
            cand --tenant 'Only this tenant [default: each tenant on its own, or the machine for machine-wide conditions; an operator''s rule is for its tenant]'
            cand --channel 'Where notifications go, repeatable [default: websocket]'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;rm'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;enable'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;disable'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;rules;help'= {
            cand list 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)'
            cand show 'One rule, all of it'
            cand add 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored'
            cand rm 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history'
            cand enable 'Evaluate a disabled rule again'
            cand disable 'Stop evaluating a rule, keeping it: its firing alerts resolve'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;alerts;rules;help;list'= {
        }
        &'pytake;alerts;rules;help;show'= {
        }
        &'pytake;alerts;rules;help;add'= {
        }
        &'pytake;alerts;rules;help;rm'= {
        }
        &'pytake;alerts;rules;help;enable'= {
        }
        &'pytake;alerts;rules;help;disable'= {
        }
        &'pytake;alerts;rules;help;help'= {
        }
        &'pytake;alerts;ack'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;silence'= {
            cand --rule 'The rule to silence (with --tenant: for that tenant only)'
            cand --tenant 'The tenant to silence (with --rule: that rule only)'
            cand --for 'How long, from now (30m, 2h, 1d)'
            cand --reason 'Why, for whoever reads `pytake alerts silences`'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;silences'= {
            cand --tenant 'Only this tenant''s silences and those of every tenant (admin tokens) [default: every tenant, or the token''s]'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --all 'Ended silences too, while the server keeps them'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;unsilence'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;alerts;help'= {
            cand list 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
            cand incidents 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
            cand rules 'The rules, and one shown, added, removed, enabled or disabled'
            cand ack 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop'
            cand silence 'Leave a rule''s or a tenant''s alerts out of notifications for a while'
            cand silences 'The running silences (--all: ended ones too)'
            cand unsilence 'End a silence now'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;alerts;help;list'= {
        }
        &'pytake;alerts;help;incidents'= {
        }
        &'pytake;alerts;help;rules'= {
            cand list 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)'
            cand show 'One rule, all of it'
            cand add 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored'
            cand rm 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history'
            cand enable 'Evaluate a disabled rule again'
            cand disable 'Stop evaluating a rule, keeping it: its firing alerts resolve'
        }
        &'pytake;alerts;help;rules;list'= {
        }
        &'pytake;alerts;help;rules;show'= {
        }
        &'pytake;alerts;help;rules;add'= {
        }
        &'pytake;alerts;help;rules;rm'= {
        }
        &'pytake;alerts;help;rules;enable'= {
        }
        &'pytake;alerts;help;rules;disable'= {
        }
        &'pytake;alerts;help;ack'= {
        }
        &'pytake;alerts;help;silence'= {
        }
        &'pytake;alerts;help;silences'= {
        }
        &'pytake;alerts;help;unsilence'= {
        }
        &'pytake;alerts;help;help'= {
        }
        &'pytake;loadtest'= {
            cand --connections 'WebSocket connections: held for the whole run (closed model) or opened during it (--arrival-rate)'
            cand --ramp 'Time over which the connections are opened'
            cand --rate 'Events published per second (batched above 200/s)'
            cand --duration 'How long events are published'
            cand --rooms 'Rooms the connections and events are spread over (per tenant)'
            cand --tenants 'Tenants the connections and events are spread over'
            cand --payload-bytes 'Bytes of padding in each event''s data'
            cand --publishers 'Concurrent POSTs in flight: enough that a slow server delays events (and shows it as latency) instead of capping the publish rate'
            cand --arrival-rate 'Open model: connections arrive at this many per second during the run'
            cand --node 'Another node of the server''s cluster, repeatable: the load is spread over --server and every --node'
            cand --threshold 'Pass/fail criterion, repeatable: ''p99<50ms'', ''loss==0'', ''connect_errors==0'', ''deliveries_per_s>=100000''; an unmet one exits 99'
            cand --junit 'Also write the result as JUnit XML, for CI systems'
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --server 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]'
            cand --token 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]'
            cand --token-file 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --spawn 'Start a pytake serve on a free loopback port with a temporary data dir, test it, stop it (also on Ctrl-C or SIGTERM)'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;token'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Print a new token signed with the server''s secret'
            cand verify 'Show a token''s claims and whether this server''s secret and rules accept it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;token;create'= {
            cand --tenant 'Tenant the token speaks for (required unless --role admin)'
            cand --role 'admin (every tenant), operator (read and publish), viewer (read), service (publish)'
            cand --sub 'Who the token is for, shown in the server''s log [default: $USER]'
            cand --ttl 'Lifetime, e.g. 15m, 24h, 30d'
            cand --secret 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]'
            cand --secret-file 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]'
            cand --token-leeway 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]'
            cand --token-audience 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]'
            cand --token-issuer 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]'
            cand --token-max-lifetime 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;token;verify'= {
            cand -o 'Output format [default: table on a terminal, json when piped]'
            cand --output 'Output format [default: table on a terminal, json when piped]'
            cand --secret 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]'
            cand --secret-file 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]'
            cand --token-leeway 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]'
            cand --token-audience 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]'
            cand --token-issuer 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]'
            cand --token-max-lifetime 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;token;help'= {
            cand create 'Print a new token signed with the server''s secret'
            cand verify 'Show a token''s claims and whether this server''s secret and rules accept it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;token;help;create'= {
        }
        &'pytake;token;help;verify'= {
        }
        &'pytake;token;help;help'= {
        }
        &'pytake;config'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
            cand check 'Check a config file as `pytake serve` would read it'
            cand init 'Write a commented config file with every setting at its default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;config;show'= {
            cand -o 'Output format: table (TOML text, also when piped) or json'
            cand --output 'Output format: table (TOML text, also when piped) or json'
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand --origin 'Say where each value came from: a flag, a variable, the file (with its line) or the default'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;config;check'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;config;init'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;config;help'= {
            cand show 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
            cand check 'Check a config file as `pytake serve` would read it'
            cand init 'Write a commented config file with every setting at its default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;config;help;show'= {
        }
        &'pytake;config;help;check'= {
        }
        &'pytake;config;help;init'= {
        }
        &'pytake;config;help;help'= {
        }
        &'pytake;completions'= {
            cand --config 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]'
            cand --color 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never'
            cand --data-dir 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]'
            cand -v 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand --verbose 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)'
            cand -q 'Less log output on stderr, a level per -q, down to none'
            cand --quiet 'Less log output on stderr, a level per -q, down to none'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'pytake;help'= {
            cand serve 'Run the server: event intake, WebSocket fan-out, history'
            cand tail 'Stream events as they happen; reconnects and resumes without loss'
            cand presence 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves'
            cand status 'One screen on a server''s health: version, uptime, store, bus, connections, events/s'
            cand metrics 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV'
            cand export 'Export the time series, events or a campaign report, streamed to a file or stdout'
            cand queue 'The job queue: stats, jobs, dead letters; retry, purge, enqueue'
            cand alerts 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence'
            cand loadtest 'WebSocket load against a server (or one it spawns), with thresholds for CI'
            cand token 'Create tokens'
            cand config 'Show, check and write the configuration'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pytake;help;serve'= {
        }
        &'pytake;help;tail'= {
        }
        &'pytake;help;presence'= {
        }
        &'pytake;help;status'= {
        }
        &'pytake;help;metrics'= {
            cand overview 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)'
            cand series 'A time series: one row per bucket, one column per metric'
            cand campaigns 'Every campaign''s progress and health, with the tenant''s summary'
            cand campaign 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing'
            cand system 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems'
        }
        &'pytake;help;metrics;overview'= {
        }
        &'pytake;help;metrics;series'= {
        }
        &'pytake;help;metrics;campaigns'= {
        }
        &'pytake;help;metrics;campaign'= {
        }
        &'pytake;help;metrics;system'= {
        }
        &'pytake;help;export'= {
            cand metrics 'The dashboard''s time series: a row per bucket, a column per metric (the default)'
            cand events 'Stored events of a time range, in id order, of any volume'
            cand campaign 'A campaign''s report: its figures, its performance and its events, one JSON document'
        }
        &'pytake;help;export;metrics'= {
        }
        &'pytake;help;export;events'= {
        }
        &'pytake;help;export;campaign'= {
        }
        &'pytake;help;queue'= {
            cand stats 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)'
            cand list 'Jobs, newest first, with their attempts and last error'
            cand dead 'The dead letters: jobs out of attempts (or that can never run), with their last error'
            cand show 'One job: its state, attempts, times, whole last error and payload'
            cand retry 'Run a dead job again from its first attempt, or every dead job (of a kind)'
            cand purge 'Delete done or dead jobs last updated longer ago than a duration'
            cand enqueue 'Add a job (noop to check the queue end to end, http to deliver a request)'
        }
        &'pytake;help;queue;stats'= {
        }
        &'pytake;help;queue;list'= {
        }
        &'pytake;help;queue;dead'= {
        }
        &'pytake;help;queue;show'= {
        }
        &'pytake;help;queue;retry'= {
        }
        &'pytake;help;queue;purge'= {
        }
        &'pytake;help;queue;enqueue'= {
        }
        &'pytake;help;alerts'= {
            cand list 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)'
            cand incidents 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications'
            cand rules 'The rules, and one shown, added, removed, enabled or disabled'
            cand ack 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop'
            cand silence 'Leave a rule''s or a tenant''s alerts out of notifications for a while'
            cand silences 'The running silences (--all: ended ones too)'
            cand unsilence 'End a silence now'
        }
        &'pytake;help;alerts;list'= {
        }
        &'pytake;help;alerts;incidents'= {
        }
        &'pytake;help;alerts;rules'= {
            cand list 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)'
            cand show 'One rule, all of it'
            cand add 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored'
            cand rm 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history'
            cand enable 'Evaluate a disabled rule again'
            cand disable 'Stop evaluating a rule, keeping it: its firing alerts resolve'
        }
        &'pytake;help;alerts;rules;list'= {
        }
        &'pytake;help;alerts;rules;show'= {
        }
        &'pytake;help;alerts;rules;add'= {
        }
        &'pytake;help;alerts;rules;rm'= {
        }
        &'pytake;help;alerts;rules;enable'= {
        }
        &'pytake;help;alerts;rules;disable'= {
        }
        &'pytake;help;alerts;ack'= {
        }
        &'pytake;help;alerts;silence'= {
        }
        &'pytake;help;alerts;silences'= {
        }
        &'pytake;help;alerts;unsilence'= {
        }
        &'pytake;help;loadtest'= {
        }
        &'pytake;help;token'= {
            cand create 'Print a new token signed with the server''s secret'
            cand verify 'Show a token''s claims and whether this server''s secret and rules accept it'
        }
        &'pytake;help;token;create'= {
        }
        &'pytake;help;token;verify'= {
        }
        &'pytake;help;config'= {
            cand show 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked'
            cand check 'Check a config file as `pytake serve` would read it'
            cand init 'Write a commented config file with every setting at its default'
        }
        &'pytake;help;config;show'= {
        }
        &'pytake;help;config;check'= {
        }
        &'pytake;help;config;init'= {
        }
        &'pytake;help;completions'= {
        }
        &'pytake;help;help'= {
        }
    ]
    $completions[$command]
}
