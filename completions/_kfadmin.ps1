
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'kfadmin' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'kfadmin'
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
        'kfadmin' {
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Take a consistent, checksummed, verified backup')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check archives: checksums, gzip, tar, manifest, SQLite integrity')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup into a container or a data directory')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the kfadmin archives in a backup directory or an S3 location, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old archives by grandfather-father-son retention (as restic''s forget)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old')
            [CompletionResult]::new('drill', 'drill', [CompletionResultType]::ParameterValue, 'Prove that a backup brings the server back: boot a throwaway copy of the container on it')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'The configuration file: every setting and where it comes from')
            [CompletionResult]::new('schedule', 'schedule', [CompletionResultType]::ParameterValue, 'Print, or install and enable, the systemd timers (or cron file) that run the backups')
            [CompletionResult]::new('replicate', 'replicate', [CompletionResultType]::ParameterValue, 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('manpages', 'manpages', [CompletionResultType]::ParameterValue, 'Write the man pages (kfadmin.1 and one per subcommand) into a directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kfadmin;backup' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The Keyfount database file on this host')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--compose-project', '--compose-project', [CompletionResultType]::ParameterName, 'With --container: the Compose project, when several projects have that service')
            [CompletionResult]::new('--db-path', '--db-path', [CompletionResultType]::ParameterName, 'With --container: the database''s path inside the container')
            [CompletionResult]::new('--stop-timeout', '--stop-timeout', [CompletionResultType]::ParameterName, 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container''s own stop timeout, or 10]')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'First part of the archive''s name [default: the container''s name, or the database file''s name without .db; import: the tarball''s name without .tar.gz]')
            [CompletionResult]::new('--nice', '--nice', [CompletionResultType]::ParameterName, 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin''s own priority')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]')
            [CompletionResult]::new('--compression-level', '--compression-level', [CompletionResultType]::ParameterName, 'gzip level, 1 (fastest) to 9 (smallest); Keyfount''s vaults are encrypted and barely compress')
            [CompletionResult]::new('--encrypt-to', '--encrypt-to', [CompletionResultType]::ParameterName, 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable')
            [CompletionResult]::new('--recipients-file', '--recipients-file', [CompletionResultType]::ParameterName, 'Encrypt to every recipient listed in FILE (one a line, # comments)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Also upload the verified archive and its .sha256 to s3://BUCKET[/PREFIX] (repeatable; KFADMIN_TO takes several, separated by spaces). Credentials, region and endpoint as the AWS CLI reads them (AWS_ACCESS_KEY_ID…, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL), checked before the snapshot. Parts of 5 MiB, six at a time; a transfer fails only when no byte moved for KFADMIN_OFFSITE_IDLE (60s), never for being slow')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write Prometheus textfile-collector metrics here (atomically), success or failure')
            [CompletionResult]::new('--ping-url', '--ping-url', [CompletionResultType]::ParameterName, 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--online', '--online', [CompletionResultType]::ParameterName, 'Copy the database while the server keeps running (SQLite online backup API)')
            [CompletionResult]::new('--cold', '--cold', [CompletionResultType]::ParameterName, 'Stop the container, copy its data directory, start it again (needs --container)')
            [CompletionResult]::new('--passphrase', '--passphrase', [CompletionResultType]::ParameterName, 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file')
            [CompletionResult]::new('--plaintext-offsite', '--plaintext-offsite', [CompletionResultType]::ParameterName, 'Allow --to without encryption: the database holds the server''s long-term keys, so a plaintext archive is refused offsite unless this is given')
            [CompletionResult]::new('--verify-offsite', '--verify-offsite', [CompletionResultType]::ParameterName, 'After each upload, read the whole object back and check its sha256 (besides its size and its sidecar, always checked); a read-back that fails keeps the copy, unchecked')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Check everything a backup checks first (the database or container, the name, the encryption, the offsite locations) and say what would be done; write, lock, stop and ping nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;verify' {
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where to unpack the database for the SQLite checks (a private directory is made there)')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--identity', '--identity', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--quick', '--quick', [CompletionResultType]::ParameterName, 'Stop before the SQLite checks (no need to unpack the database)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;restore' {
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Restore the database as of TIME from the repository''s point-in-time chain (kfadmin replicate): RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). The state of the last transaction seen committed at or before TIME, rebuilt and checked against the checksum recorded for that point and integrity_check before anything is touched')
            [CompletionResult]::new('--chain', '--chain', [CompletionResultType]::ParameterName, 'With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed only when the repository holds chains of several databases and none is of the target')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Keyfount''s data directory on this host (the one that holds keyfount.db)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--compose-project', '--compose-project', [CompletionResultType]::ParameterName, 'With --container: the Compose project, when several projects have that service')
            [CompletionResult]::new('--db-path', '--db-path', [CompletionResultType]::ParameterName, 'With --container: the database''s path inside the container')
            [CompletionResult]::new('--encrypt-to', '--encrypt-to', [CompletionResultType]::ParameterName, 'With --container: encrypt the pre-restore safety archive to this recipient (age1…, ssh-…); repeatable')
            [CompletionResult]::new('--recipients-file', '--recipients-file', [CompletionResultType]::ParameterName, 'With --container: encrypt the pre-restore safety archive to every recipient in FILE')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'With --container: the repository (a directory) the pre-restore safety archive goes to')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'With --container: the repository (a directory) the pre-restore safety archive goes to')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where kfadmin unpacks and checks the backup before it swaps it in (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]')
            [CompletionResult]::new('--stop-timeout', '--stop-timeout', [CompletionResultType]::ParameterName, 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container''s own stop timeout, or 10]')
            [CompletionResult]::new('--settle', '--settle', [CompletionResultType]::ParameterName, 'How long the container must stay running to count as up (without a healthcheck)')
            [CompletionResult]::new('--health-timeout', '--health-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a healthcheck to report healthy [default: what the container''s healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--identity', '--identity', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--no-rollback', '--no-rollback', [CompletionResultType]::ParameterName, 'Keep the restored data even if the container does not come up on it')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Restore even when the plan warns that the archive may be the wrong one (another container''s or path''s, no Keyfount schema, less than half the size of the current database, older than the newest backup of the target in the repository or beside it); needed with --yes, where there is no second question to answer')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed when stdin is not a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed when stdin is not a terminal)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Verify and show the plan, then stop without changing anything')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;list' {
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only the archives of this name (a host or container, e.g. in a fleet''s bucket); KFADMIN_NAME, which names the archives backup writes, does not filter list')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Check every archive against its .sha256 sidecar (reads every archive in full)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;prune' {
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--keep-last', '--keep-last', [CompletionResultType]::ParameterName, 'Keep the N newest archives')
            [CompletionResult]::new('--keep-daily', '--keep-daily', [CompletionResultType]::ParameterName, 'Keep the newest archive of each of the last N days that have one')
            [CompletionResult]::new('--keep-weekly', '--keep-weekly', [CompletionResultType]::ParameterName, 'Keep the newest archive of each of the last N ISO weeks that have one')
            [CompletionResult]::new('--keep-monthly', '--keep-monthly', [CompletionResultType]::ParameterName, 'Keep the newest archive of each of the last N months that have one')
            [CompletionResult]::new('--keep-pre-restore', '--keep-pre-restore', [CompletionResultType]::ParameterName, 'Keep the N newest pre-restore safety copies of each name (they are never counted as backups)')
            [CompletionResult]::new('--keep-pre-restore-within', '--keep-pre-restore-within', [CompletionResultType]::ParameterName, 'Keep every pre-restore safety copy younger than this too, however many there are (the first one may be the only copy of the data from before an incident; 0s: count only)')
            [CompletionResult]::new('--keep-commits-within', '--keep-commits-within', [CompletionResultType]::ParameterName, 'Point-in-time chains: keep every commit younger than this; older commits are merged into one point per minute (compaction)')
            [CompletionResult]::new('--keep-minutely-within', '--keep-minutely-within', [CompletionResultType]::ParameterName, 'Point-in-time chains: one point per minute up to this age, one per hour after it')
            [CompletionResult]::new('--keep-points-within', '--keep-points-within', [CompletionResultType]::ParameterName, 'Point-in-time chains: keep the points of this long back and every chain they need; remove whole chains that only hold older points [default: keep every chain]')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where a remote archive without a sidecar is downloaded for its check (a private directory is made there) [default: the state directory''s staging/]')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show KEEP or REMOVE and the deciding rule for each archive; remove nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;status' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The Keyfount database file on this host')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--compose-project', '--compose-project', [CompletionResultType]::ParameterName, 'With --container: the Compose project, when several projects have that service')
            [CompletionResult]::new('--db-path', '--db-path', [CompletionResultType]::ParameterName, 'With --container: the database''s path inside the container')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX]')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Also check the newest backup at this offsite location, s3://BUCKET[/PREFIX], against --max-age (repeatable; KFADMIN_TO takes several, separated by spaces)')
            [CompletionResult]::new('--max-age', '--max-age', [CompletionResultType]::ParameterName, 'The oldest the last backup may be (e.g. 26h, 2d, 90m)')
            [CompletionResult]::new('--max-drill-age', '--max-drill-age', [CompletionResultType]::ParameterName, 'A problem when the last drill that passed (`kfadmin drill`) is older than this (e.g. 8d), or there is none, or it was of a backup older than this or of another server')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The archives'' name, as backup --name wrote them [default: the container''s name, or the database file''s name without .db]')
            [CompletionResult]::new('--max-lag', '--max-lag', [CompletionResultType]::ParameterName, 'Check point-in-time replication of this database in the repository: a problem when its chain lags more than this (e.g. 10s), its follower stopped reporting, or it is broken')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'With --max-lag: write Prometheus textfile-collector metrics of the replication here (atomically)')
            [CompletionResult]::new('--ping-url', '--ping-url', [CompletionResultType]::ParameterName, 'Ping this URL healthchecks.io-style: URL when all is well, URL/fail with the problems')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;drill' {
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Drill the database as of TIME, rebuilt from the repository''s point-in-time chain (kfadmin replicate) and checked against that point''s checksum and integrity_check: RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). Without --container, the container the chain was replicated from')
            [CompletionResult]::new('--chain', '--chain', [CompletionResultType]::ParameterName, 'With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed only when the repository holds chains of several databases and none is of --container')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--compose-project', '--compose-project', [CompletionResultType]::ParameterName, 'With --container: the Compose project, when several projects have that service')
            [CompletionResult]::new('--db-path', '--db-path', [CompletionResultType]::ParameterName, 'With --container: the database''s path inside the container')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository to take the newest backup from: a backup directory or s3://BUCKET[/PREFIX]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository to take the newest backup from: a backup directory or s3://BUCKET[/PREFIX]')
            [CompletionResult]::new('--settle', '--settle', [CompletionResultType]::ParameterName, 'How long the copy must stay running to count as up (without a healthcheck)')
            [CompletionResult]::new('--health-timeout', '--health-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the copy''s healthcheck to report healthy [default: what the healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where kfadmin unpacks and checks the backup (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Drill the newest backup of this name, as backup --name wrote it [default: the container''s name]')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--identity', '--identity', [CompletionResultType]::ParameterName, 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write Prometheus textfile-collector metrics here (atomically), success or failure')
            [CompletionResult]::new('--ping-url', '--ping-url', [CompletionResultType]::ParameterName, 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Find the container, check its image, and name the archives the drill would verify and boot a copy on; verify, create, lock and ping nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;import' {
            [CompletionResult]::new('--db-name', '--db-name', [CompletionResultType]::ParameterName, 'The database''s file name in the tarball')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'First part of the archive''s name [default: the container''s name, or the database file''s name without .db; import: the tarball''s name without .tar.gz]')
            [CompletionResult]::new('--nice', '--nice', [CompletionResultType]::ParameterName, 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin''s own priority')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]')
            [CompletionResult]::new('--compression-level', '--compression-level', [CompletionResultType]::ParameterName, 'gzip level, 1 (fastest) to 9 (smallest); Keyfount''s vaults are encrypted and barely compress')
            [CompletionResult]::new('--encrypt-to', '--encrypt-to', [CompletionResultType]::ParameterName, 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable')
            [CompletionResult]::new('--recipients-file', '--recipients-file', [CompletionResultType]::ParameterName, 'Encrypt to every recipient listed in FILE (one a line, # comments)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--salvage', '--salvage', [CompletionResultType]::ParameterName, 'When the database fails its checks, archive what can still be read of it, marked salvaged, instead of refusing')
            [CompletionResult]::new('--without-wal', '--without-wal', [CompletionResultType]::ParameterName, 'With --salvage: salvage the database file alone, as captured, leaving the tarball''s -wal out (its committed transactions are lost; the report says how many)')
            [CompletionResult]::new('--passphrase', '--passphrase', [CompletionResultType]::ParameterName, 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Check the tarball, the name and the encryption and say what would be written; unpack, write and lock nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;config' {
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kfadmin;config;show' {
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Only the settings of this command (backup, restore, prune, …)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kfadmin;config;help;show' {
            break
        }
        'kfadmin;config;help;help' {
            break
        }
        'kfadmin;schedule' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container the jobs back up and drill')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container the jobs back up and drill')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'The backup and drill jobs write Prometheus metrics here')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'The nightly backup''s time (local time, HH:MM); the weekly drill runs on Sundays 90 minutes later')
            [CompletionResult]::new('--keep-daily', '--keep-daily', [CompletionResultType]::ParameterName, 'The prune job''s --keep-daily')
            [CompletionResult]::new('--keep-weekly', '--keep-weekly', [CompletionResultType]::ParameterName, 'The prune job''s --keep-weekly')
            [CompletionResult]::new('--keep-monthly', '--keep-monthly', [CompletionResultType]::ParameterName, 'The prune job''s --keep-monthly')
            [CompletionResult]::new('--init', '--init', [CompletionResultType]::ParameterName, 'systemd timers or a cron file [default: systemd when it runs the system, else cron]')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Install under this directory instead of / (an image being built): the timers are enabled by their links, without systemctl')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--no-drill', '--no-drill', [CompletionResultType]::ParameterName, 'No weekly drill')
            [CompletionResult]::new('--install', '--install', [CompletionResultType]::ParameterName, 'Write the files and enable the timers')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace files of the same names that kfadmin did not write')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;replicate' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The Keyfount database file on this host')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--container', '--container', [CompletionResultType]::ParameterName, 'The Keyfount container: a name, an id, or a Compose service name')
            [CompletionResult]::new('--compose-project', '--compose-project', [CompletionResultType]::ParameterName, 'With --container: the Compose project, when several projects have that service')
            [CompletionResult]::new('--db-path', '--db-path', [CompletionResultType]::ParameterName, 'With --container: the database''s path inside the container')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'How often the WAL is read (at most 500ms: every commit must be durable within a second)')
            [CompletionResult]::new('--tmp-dir', '--tmp-dir', [CompletionResultType]::ParameterName, 'Where the base is staged before it is archived (a private directory is made there)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop (as on SIGTERM) after this long (tests and benchmarks)')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write Prometheus textfile-collector metrics of the replication here (lag, what was shipped), every 2 seconds and at exit, atomically')
            [CompletionResult]::new('--ping-url', '--ping-url', [CompletionResultType]::ParameterName, 'Ping URL/fail (healthchecks.io-style) when replicate exits with an error')
            [CompletionResult]::new('--compact-every', '--compact-every', [CompletionResultType]::ParameterName, 'Compact the chain in the background this often (as `prune` does; 0s: never)')
            [CompletionResult]::new('--keep-commits-within', '--keep-commits-within', [CompletionResultType]::ParameterName, 'Compaction keeps every commit younger than this; older ones become one point per minute')
            [CompletionResult]::new('--keep-minutely-within', '--keep-minutely-within', [CompletionResultType]::ParameterName, 'Compaction keeps one point per minute up to this age, one per hour after it')
            [CompletionResult]::new('--new-base-every', '--new-base-every', [CompletionResultType]::ParameterName, 'Start a new chain on a new base (a verified online backup) this often (0s: never)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;completions' {
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;manpages' {
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid')
            [CompletionResult]::new('--passphrase-file', '--passphrase-file', [CompletionResultType]::ParameterName, 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print exactly one JSON object on stdout at the end, and nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and warnings (and the JSON report with --json)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more about each step (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kfadmin;help' {
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Take a consistent, checksummed, verified backup')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check archives: checksums, gzip, tar, manifest, SQLite integrity')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup into a container or a data directory')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the kfadmin archives in a backup directory or an S3 location, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old archives by grandfather-father-son retention (as restic''s forget)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old')
            [CompletionResult]::new('drill', 'drill', [CompletionResultType]::ParameterValue, 'Prove that a backup brings the server back: boot a throwaway copy of the container on it')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'The configuration file: every setting and where it comes from')
            [CompletionResult]::new('schedule', 'schedule', [CompletionResultType]::ParameterValue, 'Print, or install and enable, the systemd timers (or cron file) that run the backups')
            [CompletionResult]::new('replicate', 'replicate', [CompletionResultType]::ParameterValue, 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('manpages', 'manpages', [CompletionResultType]::ParameterValue, 'Write the man pages (kfadmin.1 and one per subcommand) into a directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kfadmin;help;backup' {
            break
        }
        'kfadmin;help;verify' {
            break
        }
        'kfadmin;help;restore' {
            break
        }
        'kfadmin;help;list' {
            break
        }
        'kfadmin;help;prune' {
            break
        }
        'kfadmin;help;status' {
            break
        }
        'kfadmin;help;drill' {
            break
        }
        'kfadmin;help;import' {
            break
        }
        'kfadmin;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default')
            break
        }
        'kfadmin;help;config;show' {
            break
        }
        'kfadmin;help;schedule' {
            break
        }
        'kfadmin;help;replicate' {
            break
        }
        'kfadmin;help;completions' {
            break
        }
        'kfadmin;help;manpages' {
            break
        }
        'kfadmin;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
