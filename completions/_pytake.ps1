
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'pytake' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'pytake'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'pytake' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the server: event intake, WebSocket fan-out, history')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Stream events as they happen; reconnects and resumes without loss')
            [CompletionResult]::new('presence', 'presence', [CompletionResultType]::ParameterValue, 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'One screen on a server''s health: version, uptime, store, bus, connections, events/s')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export the time series, events or a campaign report, streamed to a file or stdout')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'The job queue: stats, jobs, dead letters; retry, purge, enqueue')
            [CompletionResult]::new('alerts', 'alerts', [CompletionResultType]::ParameterValue, 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence')
            [CompletionResult]::new('loadtest', 'loadtest', [CompletionResultType]::ParameterValue, 'WebSocket load against a server (or one it spawns), with thresholds for CI')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Create tokens')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show, check and write the configuration')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on, HOST:PORT; port 0 picks a free one [env: PYTAKE_LISTEN] [default: 127.0.0.1:8080]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as readable text or one JSON object per line [env: PYTAKE_LOG_FORMAT] [default: text]')
            [CompletionResult]::new('--rate-limit-viewer', '--rate-limit-viewer', [CompletionResultType]::ParameterName, 'REST requests per minute per viewer token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_VIEWER] [default: 60]')
            [CompletionResult]::new('--rate-limit-operator', '--rate-limit-operator', [CompletionResultType]::ParameterName, 'REST requests per minute per operator token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_OPERATOR] [default: 60]')
            [CompletionResult]::new('--rate-limit-admin', '--rate-limit-admin', [CompletionResultType]::ParameterName, 'REST requests per minute per admin token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_ADMIN] [default: 60000]')
            [CompletionResult]::new('--rate-limit-service', '--rate-limit-service', [CompletionResultType]::ParameterName, 'REST requests per minute per service token subject; 0: no limit [env: PYTAKE_RATE_LIMIT_SERVICE] [default: 60000]')
            [CompletionResult]::new('--trusted-proxies', '--trusted-proxies', [CompletionResultType]::ParameterName, 'Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client [env: PYTAKE_TRUSTED_PROXIES] [default: []]')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]')
            [CompletionResult]::new('--token-leeway', '--token-leeway', [CompletionResultType]::ParameterName, 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]')
            [CompletionResult]::new('--token-audience', '--token-audience', [CompletionResultType]::ParameterName, 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]')
            [CompletionResult]::new('--token-issuer', '--token-issuer', [CompletionResultType]::ParameterName, 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]')
            [CompletionResult]::new('--token-max-lifetime', '--token-max-lifetime', [CompletionResultType]::ParameterName, 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]')
            [CompletionResult]::new('--rate-limit', '--rate-limit', [CompletionResultType]::ParameterName, 'Client messages per minute per WebSocket connection [env: PYTAKE_RATE_LIMIT] [default: 100]')
            [CompletionResult]::new('--max-frame-bytes', '--max-frame-bytes', [CompletionResultType]::ParameterName, 'Largest WebSocket frame a client may send, in bytes [env: PYTAKE_MAX_FRAME_BYTES] [default: 65536]')
            [CompletionResult]::new('--outbound-queue', '--outbound-queue', [CompletionResultType]::ParameterName, 'Frames queued per connection before it is closed as a slow consumer (4009) [env: PYTAKE_OUTBOUND_QUEUE] [default: 1024]')
            [CompletionResult]::new('--auth-timeout', '--auth-timeout', [CompletionResultType]::ParameterName, 'Close connections that have not authenticated by then (4001) [env: PYTAKE_AUTH_TIMEOUT] [default: 10s]')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'How often the server pings each connection [env: PYTAKE_PING_INTERVAL] [default: 25s]')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close connections silent for this long [env: PYTAKE_IDLE_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--write-stall', '--write-stall', [CompletionResultType]::ParameterName, 'Close a connection as a slow consumer (4009) when a write makes no progress for this long [env: PYTAKE_WRITE_STALL] [default: 10s]')
            [CompletionResult]::new('--compression', '--compression', [CompletionResultType]::ParameterName, 'Compress WebSocket messages (permessage-deflate) for clients that offer it; false turns it off [env: PYTAKE_COMPRESSION] [default: true]')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Connections (WebSocket and SSE) this node serves at once; over it, 503 [env: PYTAKE_MAX_CONNECTIONS] [default: min(20000, 80% of the open-file limit)]')
            [CompletionResult]::new('--max-connections-per-tenant', '--max-connections-per-tenant', [CompletionResultType]::ParameterName, 'Connections one tenant may hold on this node; over it, 503 (or close 1013 after Auth) [env: PYTAKE_MAX_CONNECTIONS_PER_TENANT] [default: max_connections]')
            [CompletionResult]::new('--max-unauthenticated-per-address', '--max-unauthenticated-per-address', [CompletionResultType]::ParameterName, 'Connections not yet authenticated one source address may hold; over it, 503 [env: PYTAKE_MAX_UNAUTHENTICATED_PER_ADDRESS] [default: 64]')
            [CompletionResult]::new('--presence-grace', '--presence-grace', [CompletionResultType]::ParameterName, 'Keep a user online this long after its last connection closed (0s: at once) [env: PYTAKE_PRESENCE_GRACE] [default: 5s]')
            [CompletionResult]::new('--presence-ttl', '--presence-ttl', [CompletionResultType]::ParameterName, 'With several nodes: a node whose presence heartbeat stops this long has its users go offline [env: PYTAKE_PRESENCE_TTL] [default: 15s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Event store URL: sqlite://PATH (one node) or postgres://USER:PASSWORD@HOST:PORT/DATABASE (several) [env: PYTAKE_STORE] [default: sqlite://<data-dir>/pytake.db]')
            [CompletionResult]::new('--store-pool-size', '--store-pool-size', [CompletionResultType]::ParameterName, 'Most PostgreSQL connections this node opens [env: PYTAKE_STORE_POOL_SIZE] [default: 16]')
            [CompletionResult]::new('--bus', '--bus', [CompletionResultType]::ParameterName, 'Event bus: memory (one node) or redis://HOST:PORT (several) [env: PYTAKE_BUS] [default: memory]')
            [CompletionResult]::new('--metrics-push-interval', '--metrics-push-interval', [CompletionResultType]::ParameterName, 'How often dashboard subscribers get a Metrics message (when something changed) [env: PYTAKE_METRICS_PUSH_INTERVAL] [default: 2s]')
            [CompletionResult]::new('--metrics-campaign-throttle', '--metrics-campaign-throttle', [CompletionResultType]::ParameterName, 'Least time between two pushes of one campaign''s figures; lifecycle changes go at once [env: PYTAKE_METRICS_CAMPAIGN_THROTTLE] [default: 2s]')
            [CompletionResult]::new('--metrics-active-window', '--metrics-active-window', [CompletionResultType]::ParameterName, 'A conversation idle this long is no longer active [env: PYTAKE_METRICS_ACTIVE_WINDOW] [default: 1d]')
            [CompletionResult]::new('--queue-concurrency', '--queue-concurrency', [CompletionResultType]::ParameterName, 'Jobs this node runs at once [env: PYTAKE_QUEUE_CONCURRENCY] [default: 32]')
            [CompletionResult]::new('--queue-batch-size', '--queue-batch-size', [CompletionResultType]::ParameterName, 'Most jobs one lease takes [env: PYTAKE_QUEUE_BATCH_SIZE] [default: 10]')
            [CompletionResult]::new('--queue-poll-interval', '--queue-poll-interval', [CompletionResultType]::ParameterName, 'How often idle workers look for due jobs (a fallback: enqueues wake them at once) [env: PYTAKE_QUEUE_POLL_INTERVAL] [default: 1s]')
            [CompletionResult]::new('--queue-lease', '--queue-lease', [CompletionResultType]::ParameterName, 'How long a worker holds a job; a job whose worker died runs again after it [env: PYTAKE_QUEUE_LEASE] [default: 30s]')
            [CompletionResult]::new('--queue-max-attempts', '--queue-max-attempts', [CompletionResultType]::ParameterName, 'Runs before a failing job is dead [env: PYTAKE_QUEUE_MAX_ATTEMPTS] [default: 3]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--demo', '--demo', [CompletionResultType]::ParameterName, 'Feed realistic synthetic traffic of three tenants (acme, globex, initech)')
            [CompletionResult]::new('--stop-when-stdin-closes', '--stop-when-stdin-closes', [CompletionResultType]::ParameterName, 'Stop when stdin closes. For `loadtest --spawn`: its server then stops even when loadtest is killed with SIGKILL (the kernel closes the pipe), which no signal handler can see. Hidden: a server run by a service manager has a stdin that is closed from the start')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;tail' {
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence, campaign:ID, conversation:ID, user:ID [default: every room]')
            [CompletionResult]::new('--room', '--room', [CompletionResultType]::ParameterName, 'Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence, campaign:ID, conversation:ID, user:ID [default: every room]')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Only events of this type, repeatable (MessageSent, ERPCall, ...)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Only events of this type, repeatable (MessageSent, ERPCall, ...)')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant to follow (admin tokens; others see their own tenant only) [default: every tenant]')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Start after this event id, or at what arrived this long ago (10m, 2h) or since this RFC 3339 time (2026-12-02T10:00:00Z) [default: now]')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Print only events stamped up to this RFC 3339 time or this long ago (10m), then exit; a time already past implies --no-follow')
            [CompletionResult]::new('--tail', '--tail', [CompletionResultType]::ParameterName, 'Print the last N events first (0: only new ones) [default: 0]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Exit after printing N events')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Exit after printing N events')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--no-follow', '--no-follow', [CompletionResultType]::ParameterName, 'Print what --since or --tail selects, then exit without waiting for new events')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;presence' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'The tenant (a tenant token sees only its own; an admin may name any, or none for all)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'After the list, print each presence change as it happens (until Ctrl-C)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;status' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('overview', 'overview', [CompletionResultType]::ParameterValue, 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)')
            [CompletionResult]::new('series', 'series', [CompletionResultType]::ParameterValue, 'A time series: one row per bucket, one column per metric')
            [CompletionResult]::new('campaigns', 'campaigns', [CompletionResultType]::ParameterValue, 'Every campaign''s progress and health, with the tenant''s summary')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing')
            [CompletionResult]::new('system', 'system', [CompletionResultType]::ParameterValue, 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;metrics;overview' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics;series' {
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, '1h, 24h, 7d or 30d [default: 24h]')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metric', '--metric', [CompletionResultType]::ParameterName, 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Metric to show, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics;campaigns' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the N most recent campaigns [default: 100]')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics;campaign' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics;system' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;metrics;help' {
            [CompletionResult]::new('overview', 'overview', [CompletionResultType]::ParameterValue, 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)')
            [CompletionResult]::new('series', 'series', [CompletionResultType]::ParameterValue, 'A time series: one row per bucket, one column per metric')
            [CompletionResult]::new('campaigns', 'campaigns', [CompletionResultType]::ParameterValue, 'Every campaign''s progress and health, with the tenant''s summary')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing')
            [CompletionResult]::new('system', 'system', [CompletionResultType]::ParameterValue, 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;metrics;help;overview' {
            break
        }
        'pytake;metrics;help;series' {
            break
        }
        'pytake;metrics;help;campaigns' {
            break
        }
        'pytake;metrics;help;campaign' {
            break
        }
        'pytake;metrics;help;system' {
            break
        }
        'pytake;metrics;help;help' {
            break
        }
        'pytake;export' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'csv, json or ndjson [default: csv]')
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, '1h, 24h, 7d or 30d')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metric', '--metric', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'The dashboard''s time series: a row per bucket, a column per metric (the default)')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Stored events of a time range, in id order, of any volume')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'A campaign''s report: its figures, its performance and its events, one JSON document')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;export;metrics' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'csv, json or ndjson [default: csv]')
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, '1h, 24h, 7d or 30d')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--metric', '--metric', [CompletionResultType]::ParameterName, 'Metric to export, repeatable or comma-separated [default: the dashboard''s figures]')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;export;events' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'From what arrived this long ago (10m, 2h) or at this RFC 3339 time [default: the first event]')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Up to what arrived this long ago or at this RFC 3339 time, excluded [default: now]')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Only events of this room, repeatable (alerts, campaign:ID, ...)')
            [CompletionResult]::new('--room', '--room', [CompletionResultType]::ParameterName, 'Only events of this room, repeatable (alerts, campaign:ID, ...)')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'ndjson (an event per line), csv or json (one array)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;export;campaign' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'The campaign''s tenant (required with an admin token) [default: the token''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE (complete, or not at all) instead of stdout')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;export;help' {
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'The dashboard''s time series: a row per bucket, a column per metric (the default)')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Stored events of a time range, in id order, of any volume')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'A campaign''s report: its figures, its performance and its events, one JSON document')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;export;help;metrics' {
            break
        }
        'pytake;export;help;events' {
            break
        }
        'pytake;export;help;campaign' {
            break
        }
        'pytake;export;help;help' {
            break
        }
        'pytake;queue' {
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Jobs, newest first, with their attempts and last error')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'The dead letters: jobs out of attempts (or that can never run), with their last error')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One job: its state, attempts, times, whole last error and payload')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Run a dead job again from its first attempt, or every dead job (of a kind)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete done or dead jobs last updated longer ago than a duration')
            [CompletionResult]::new('enqueue', 'enqueue', [CompletionResultType]::ParameterValue, 'Add a job (noop to check the queue end to end, http to deliver a request)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;queue;stats' {
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only jobs in this state')
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the newest N')
            [CompletionResult]::new('--before', '--before', [CompletionResultType]::ParameterName, 'Only jobs with an id below ID: the next page')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;dead' {
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'Only jobs of this kind (noop, http, webhook.whatsapp, ...)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the newest N')
            [CompletionResult]::new('--before', '--before', [CompletionResultType]::ParameterName, 'Only jobs with an id below ID: the next page')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;show' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;retry' {
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'With --all-dead: only dead jobs of this kind')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--all-dead', '--all-dead', [CompletionResultType]::ParameterName, 'Every dead job instead of one')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;purge' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Which finished jobs: done or dead')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only jobs last updated longer ago than this (7d, 12h; 0s: all of them)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;enqueue' {
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'The handler that runs it')
            [CompletionResult]::new('--payload', '--payload', [CompletionResultType]::ParameterName, 'The job''s payload: JSON, or @FILE to read it from a file (http: {"url", "method"?, "headers"?, "body"})')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Higher runs first [default: 0]')
            [CompletionResult]::new('--run-at', '--run-at', [CompletionResultType]::ParameterName, 'Not before this RFC 3339 time, or this long from now (10m) [default: now]')
            [CompletionResult]::new('--max-attempts', '--max-attempts', [CompletionResultType]::ParameterName, 'Runs before it is dead [default: the server''s [queue] max_attempts]')
            [CompletionResult]::new('--correlation-id', '--correlation-id', [CompletionResultType]::ParameterName, 'Ties the job to what caused it, for tracing (1 to 128 characters)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;queue;help' {
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Jobs, newest first, with their attempts and last error')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'The dead letters: jobs out of attempts (or that can never run), with their last error')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One job: its state, attempts, times, whole last error and payload')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Run a dead job again from its first attempt, or every dead job (of a kind)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete done or dead jobs last updated longer ago than a duration')
            [CompletionResult]::new('enqueue', 'enqueue', [CompletionResultType]::ParameterValue, 'Add a job (noop to check the queue end to end, http to deliver a request)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;queue;help;stats' {
            break
        }
        'pytake;queue;help;list' {
            break
        }
        'pytake;queue;help;dead' {
            break
        }
        'pytake;queue;help;show' {
            break
        }
        'pytake;queue;help;retry' {
            break
        }
        'pytake;queue;help;purge' {
            break
        }
        'pytake;queue;help;enqueue' {
            break
        }
        'pytake;queue;help;help' {
            break
        }
        'pytake;alerts' {
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Only alerts in this state')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only this tenant''s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the newest N (up to 1000)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)')
            [CompletionResult]::new('incidents', 'incidents', [CompletionResultType]::ParameterValue, 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications')
            [CompletionResult]::new('rules', 'rules', [CompletionResultType]::ParameterValue, 'The rules, and one shown, added, removed, enabled or disabled')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop')
            [CompletionResult]::new('silence', 'silence', [CompletionResultType]::ParameterValue, 'Leave a rule''s or a tenant''s alerts out of notifications for a while')
            [CompletionResult]::new('silences', 'silences', [CompletionResultType]::ParameterValue, 'The running silences (--all: ended ones too)')
            [CompletionResult]::new('unsilence', 'unsilence', [CompletionResultType]::ParameterValue, 'End a silence now')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;alerts;list' {
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Only alerts in this state')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only this tenant''s alerts (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the newest N (up to 1000)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another when piped')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;incidents' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only this tenant''s incidents (admin tokens; other tokens see their own) [default: every tenant, or the token''s]')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Resolved incidents too if they resolved since this long ago (10m, 2h) or this RFC 3339 time [default: 24h]')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show the newest N (up to 1000)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'The rules that apply to this tenant (admin tokens): its own and every tenant''s [default: every rule, or the token''s tenant''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One rule, all of it')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Evaluate a disabled rule again')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop evaluating a rule, keeping it: its firing alerts resolve')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;alerts;rules;list' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'The rules that apply to this tenant (admin tokens): its own and every tenant''s [default: every rule, or the token''s tenant''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;show' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;add' {
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The rule as the API''s JSON, in FILE or on stdin (-), instead of the flags below')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The rule''s id: A-Z a-z 0-9 _ - . [default: made from the name, `Queue backlog` -> queue_backlog]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'What notifications call it')
            [CompletionResult]::new('--condition', '--condition', [CompletionResultType]::ParameterName, 'What it measures')
            [CompletionResult]::new('--metric', '--metric', [CompletionResultType]::ParameterName, 'Which figure, for conditions that have several (SystemResourceUsage: cpu, memory; ErpLatency: p95, p50, avg; Metric: a dashboard figure) [default: the condition''s first]')
            [CompletionResult]::new('--comparator', '--comparator', [CompletionResultType]::ParameterName, 'How the value compares with the threshold to fire (gt, ge, lt, le also do) [default: >]')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'The threshold')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'What rates and sums are measured over: whole minutes, 1m to 1h [default: 5m]')
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'How long the condition must hold before it fires, and be clear before it resolves (0s: at once) [default: 1m]')
            [CompletionResult]::new('--severity', '--severity', [CompletionResultType]::ParameterName, 'How urgent [default: warning]')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only this tenant [default: each tenant on its own, or the machine for machine-wide conditions; an operator''s rule is for its tenant]')
            [CompletionResult]::new('--channel', '--channel', [CompletionResultType]::ParameterName, 'Where notifications go, repeatable [default: websocket]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;rm' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;enable' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;disable' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;rules;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One rule, all of it')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Evaluate a disabled rule again')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop evaluating a rule, keeping it: its firing alerts resolve')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;alerts;rules;help;list' {
            break
        }
        'pytake;alerts;rules;help;show' {
            break
        }
        'pytake;alerts;rules;help;add' {
            break
        }
        'pytake;alerts;rules;help;rm' {
            break
        }
        'pytake;alerts;rules;help;enable' {
            break
        }
        'pytake;alerts;rules;help;disable' {
            break
        }
        'pytake;alerts;rules;help;help' {
            break
        }
        'pytake;alerts;ack' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;silence' {
            [CompletionResult]::new('--rule', '--rule', [CompletionResultType]::ParameterName, 'The rule to silence (with --tenant: for that tenant only)')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'The tenant to silence (with --rule: that rule only)')
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'How long, from now (30m, 2h, 1d)')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why, for whoever reads `pytake alerts silences`')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;silences' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only this tenant''s silences and those of every tenant (admin tokens) [default: every tenant, or the token''s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Ended silences too, while the server keeps them')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;unsilence' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;alerts;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)')
            [CompletionResult]::new('incidents', 'incidents', [CompletionResultType]::ParameterValue, 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications')
            [CompletionResult]::new('rules', 'rules', [CompletionResultType]::ParameterValue, 'The rules, and one shown, added, removed, enabled or disabled')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop')
            [CompletionResult]::new('silence', 'silence', [CompletionResultType]::ParameterValue, 'Leave a rule''s or a tenant''s alerts out of notifications for a while')
            [CompletionResult]::new('silences', 'silences', [CompletionResultType]::ParameterValue, 'The running silences (--all: ended ones too)')
            [CompletionResult]::new('unsilence', 'unsilence', [CompletionResultType]::ParameterValue, 'End a silence now')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;alerts;help;list' {
            break
        }
        'pytake;alerts;help;incidents' {
            break
        }
        'pytake;alerts;help;rules' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One rule, all of it')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Evaluate a disabled rule again')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop evaluating a rule, keeping it: its firing alerts resolve')
            break
        }
        'pytake;alerts;help;rules;list' {
            break
        }
        'pytake;alerts;help;rules;show' {
            break
        }
        'pytake;alerts;help;rules;add' {
            break
        }
        'pytake;alerts;help;rules;rm' {
            break
        }
        'pytake;alerts;help;rules;enable' {
            break
        }
        'pytake;alerts;help;rules;disable' {
            break
        }
        'pytake;alerts;help;ack' {
            break
        }
        'pytake;alerts;help;silence' {
            break
        }
        'pytake;alerts;help;silences' {
            break
        }
        'pytake;alerts;help;unsilence' {
            break
        }
        'pytake;alerts;help;help' {
            break
        }
        'pytake;loadtest' {
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'WebSocket connections: held for the whole run (closed model) or opened during it (--arrival-rate)')
            [CompletionResult]::new('--ramp', '--ramp', [CompletionResultType]::ParameterName, 'Time over which the connections are opened')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Events published per second (batched above 200/s)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long events are published')
            [CompletionResult]::new('--rooms', '--rooms', [CompletionResultType]::ParameterName, 'Rooms the connections and events are spread over (per tenant)')
            [CompletionResult]::new('--tenants', '--tenants', [CompletionResultType]::ParameterName, 'Tenants the connections and events are spread over')
            [CompletionResult]::new('--payload-bytes', '--payload-bytes', [CompletionResultType]::ParameterName, 'Bytes of padding in each event''s data')
            [CompletionResult]::new('--publishers', '--publishers', [CompletionResultType]::ParameterName, 'Concurrent POSTs in flight: enough that a slow server delays events (and shows it as latency) instead of capping the publish rate')
            [CompletionResult]::new('--arrival-rate', '--arrival-rate', [CompletionResultType]::ParameterName, 'Open model: connections arrive at this many per second during the run')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Another node of the server''s cluster, repeatable: the load is spread over --server and every --node')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Pass/fail criterion, repeatable: ''p99<50ms'', ''loss==0'', ''connect_errors==0'', ''deliveries_per_s>=100000''; an unmet one exits 99')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'Also write the result as JUnit XML, for CI systems')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show [env: PYTAKE_TOKEN] [default: minted from the local secret]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'File holding the token (its first line) [env: PYTAKE_TOKEN_FILE]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--spawn', '--spawn', [CompletionResultType]::ParameterName, 'Start a pytake serve on a free loopback port with a temporary data dir, test it, stop it (also on Ctrl-C or SIGTERM)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;token' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Print a new token signed with the server''s secret')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Show a token''s claims and whether this server''s secret and rules accept it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;token;create' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant the token speaks for (required unless --role admin)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'admin (every tenant), operator (read and publish), viewer (read), service (publish)')
            [CompletionResult]::new('--sub', '--sub', [CompletionResultType]::ParameterName, 'Who the token is for, shown in the server''s log [default: $USER]')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime, e.g. 15m, 24h, 30d')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]')
            [CompletionResult]::new('--token-leeway', '--token-leeway', [CompletionResultType]::ParameterName, 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]')
            [CompletionResult]::new('--token-audience', '--token-audience', [CompletionResultType]::ParameterName, 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]')
            [CompletionResult]::new('--token-issuer', '--token-issuer', [CompletionResultType]::ParameterName, 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]')
            [CompletionResult]::new('--token-max-lifetime', '--token-max-lifetime', [CompletionResultType]::ParameterName, 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;token;verify' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [default: table on a terminal, json when piped]')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'File holding the JWT secret (its first line) [env: PYTAKE_SECRET_FILE]')
            [CompletionResult]::new('--token-leeway', '--token-leeway', [CompletionResultType]::ParameterName, 'Clock skew tolerated on a token''s exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]')
            [CompletionResult]::new('--token-audience', '--token-audience', [CompletionResultType]::ParameterName, 'Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE] [default: not checked]')
            [CompletionResult]::new('--token-issuer', '--token-issuer', [CompletionResultType]::ParameterName, 'Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER] [default: not checked]')
            [CompletionResult]::new('--token-max-lifetime', '--token-max-lifetime', [CompletionResultType]::ParameterName, 'Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;token;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Print a new token signed with the server''s secret')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Show a token''s claims and whether this server''s secret and rules accept it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;token;help;create' {
            break
        }
        'pytake;token;help;verify' {
            break
        }
        'pytake;token;help;help' {
            break
        }
        'pytake;config' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a config file as `pytake serve` would read it')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a commented config file with every setting at its default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;config;show' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: table (TOML text, also when piped) or json')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: table (TOML text, also when piped) or json')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Say where each value came from: a flag, a variable, the file (with its line) or the default')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;config;check' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;config;init' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a config file as `pytake serve` would read it')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a commented config file with every setting at its default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;config;help;show' {
            break
        }
        'pytake;config;help;check' {
            break
        }
        'pytake;config;help;init' {
            break
        }
        'pytake;config;help;help' {
            break
        }
        'pytake;completions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data dir: the SQLite file and the generated secret [env: PYTAKE_DATA_DIR] [default: <user data dir>/pytake]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr, a level per -q, down to none')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'pytake;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the server: event intake, WebSocket fan-out, history')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Stream events as they happen; reconnects and resumes without loss')
            [CompletionResult]::new('presence', 'presence', [CompletionResultType]::ParameterValue, 'Who of a tenant is online (status, connections, since); --watch follows joins and leaves')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'One screen on a server''s health: version, uptime, store, bus, connections, events/s')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export the time series, events or a campaign report, streamed to a file or stdout')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'The job queue: stats, jobs, dead letters; retry, purge, enqueue')
            [CompletionResult]::new('alerts', 'alerts', [CompletionResultType]::ParameterValue, 'Alerts: what fires, incidents, rules, silences; acknowledge, add, silence')
            [CompletionResult]::new('loadtest', 'loadtest', [CompletionResultType]::ParameterValue, 'WebSocket load against a server (or one it spawns), with thresholds for CI')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Create tokens')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show, check and write the configuration')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pytake;help;serve' {
            break
        }
        'pytake;help;tail' {
            break
        }
        'pytake;help;presence' {
            break
        }
        'pytake;help;status' {
            break
        }
        'pytake;help;metrics' {
            [CompletionResult]::new('overview', 'overview', [CompletionResultType]::ParameterValue, 'The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)')
            [CompletionResult]::new('series', 'series', [CompletionResultType]::ParameterValue, 'A time series: one row per bucket, one column per metric')
            [CompletionResult]::new('campaigns', 'campaigns', [CompletionResultType]::ParameterValue, 'Every campaign''s progress and health, with the tenant''s summary')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing')
            [CompletionResult]::new('system', 'system', [CompletionResultType]::ParameterValue, 'This node: CPU, memory, RSS, connections, the store''s pool, uptime, subsystems')
            break
        }
        'pytake;help;metrics;overview' {
            break
        }
        'pytake;help;metrics;series' {
            break
        }
        'pytake;help;metrics;campaigns' {
            break
        }
        'pytake;help;metrics;campaign' {
            break
        }
        'pytake;help;metrics;system' {
            break
        }
        'pytake;help;export' {
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'The dashboard''s time series: a row per bucket, a column per metric (the default)')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Stored events of a time range, in id order, of any volume')
            [CompletionResult]::new('campaign', 'campaign', [CompletionResultType]::ParameterValue, 'A campaign''s report: its figures, its performance and its events, one JSON document')
            break
        }
        'pytake;help;export;metrics' {
            break
        }
        'pytake;help;export;events' {
            break
        }
        'pytake;help;export;campaign' {
            break
        }
        'pytake;help;queue' {
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Jobs, newest first, with their attempts and last error')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'The dead letters: jobs out of attempts (or that can never run), with their last error')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One job: its state, attempts, times, whole last error and payload')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Run a dead job again from its first attempt, or every dead job (of a kind)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete done or dead jobs last updated longer ago than a duration')
            [CompletionResult]::new('enqueue', 'enqueue', [CompletionResultType]::ParameterValue, 'Add a job (noop to check the queue end to end, http to deliver a request)')
            break
        }
        'pytake;help;queue;stats' {
            break
        }
        'pytake;help;queue;list' {
            break
        }
        'pytake;help;queue;dead' {
            break
        }
        'pytake;help;queue;show' {
            break
        }
        'pytake;help;queue;retry' {
            break
        }
        'pytake;help;queue;purge' {
            break
        }
        'pytake;help;queue;enqueue' {
            break
        }
        'pytake;help;alerts' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)')
            [CompletionResult]::new('incidents', 'incidents', [CompletionResultType]::ParameterValue, 'Incidents, newest first: open ones and those resolved lately, with their alerts and notifications')
            [CompletionResult]::new('rules', 'rules', [CompletionResultType]::ParameterValue, 'The rules, and one shown, added, removed, enabled or disabled')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Acknowledge an incident, by its id or one of its alerts'': its repeats stop')
            [CompletionResult]::new('silence', 'silence', [CompletionResultType]::ParameterValue, 'Leave a rule''s or a tenant''s alerts out of notifications for a while')
            [CompletionResult]::new('silences', 'silences', [CompletionResultType]::ParameterValue, 'The running silences (--all: ended ones too)')
            [CompletionResult]::new('unsilence', 'unsilence', [CompletionResultType]::ParameterValue, 'End a silence now')
            break
        }
        'pytake;help;alerts;list' {
            break
        }
        'pytake;help;alerts;incidents' {
            break
        }
        'pytake;help;alerts;rules' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One rule, all of it')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a rule, from flags or from the API''s JSON in a file; prints it as stored')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Evaluate a disabled rule again')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop evaluating a rule, keeping it: its firing alerts resolve')
            break
        }
        'pytake;help;alerts;rules;list' {
            break
        }
        'pytake;help;alerts;rules;show' {
            break
        }
        'pytake;help;alerts;rules;add' {
            break
        }
        'pytake;help;alerts;rules;rm' {
            break
        }
        'pytake;help;alerts;rules;enable' {
            break
        }
        'pytake;help;alerts;rules;disable' {
            break
        }
        'pytake;help;alerts;ack' {
            break
        }
        'pytake;help;alerts;silence' {
            break
        }
        'pytake;help;alerts;silences' {
            break
        }
        'pytake;help;alerts;unsilence' {
            break
        }
        'pytake;help;loadtest' {
            break
        }
        'pytake;help;token' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Print a new token signed with the server''s secret')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Show a token''s claims and whether this server''s secret and rules accept it')
            break
        }
        'pytake;help;token;create' {
            break
        }
        'pytake;help;token;verify' {
            break
        }
        'pytake;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a config file as `pytake serve` would read it')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a commented config file with every setting at its default')
            break
        }
        'pytake;help;config;show' {
            break
        }
        'pytake;help;config;check' {
            break
        }
        'pytake;help;config;init' {
            break
        }
        'pytake;help;completions' {
            break
        }
        'pytake;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
