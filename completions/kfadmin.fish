# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kfadmin_global_optspecs
    string join \n json q/quiet no-progress v/verbose lock-wait= passphrase-file= h/help V/version
end

function __fish_kfadmin_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kfadmin_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kfadmin_using_subcommand
    set -l cmd (__fish_kfadmin_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kfadmin -n "__fish_kfadmin_needs_command" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_needs_command" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_needs_command" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "backup" -d 'Take a consistent, checksummed, verified backup'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "verify" -d 'Check archives: checksums, gzip, tar, manifest, SQLite integrity'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "restore" -d 'Restore a backup into a container or a data directory'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "list" -d 'List the kfadmin archives in a backup directory or an S3 location, newest first'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "prune" -d 'Remove old archives by grandfather-father-son retention (as restic\'s forget)'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "status" -d 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "drill" -d 'Prove that a backup brings the server back: boot a throwaway copy of the container on it'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "import" -d 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "config" -d 'The configuration file: every setting and where it comes from'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "schedule" -d 'Print, or install and enable, the systemd timers (or cron file) that run the backups'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "replicate" -d 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "manpages" -d 'Write the man pages (kfadmin.1 and one per subcommand) into a directory'
complete -c kfadmin -n "__fish_kfadmin_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l db -d 'The Keyfount database file on this host' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s c -l container -d 'The Keyfount container: a name, an id, or a Compose service name' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l compose-project -d 'With --container: the Compose project, when several projects have that service' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l db-path -d 'With --container: the database\'s path inside the container' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l stop-timeout -d 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container\'s own stop timeout, or 10]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s r -l repo -d 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l name -d 'First part of the archive\'s name [default: the container\'s name, or the database file\'s name without .db; import: the tarball\'s name without .tar.gz]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l nice -d 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin\'s own priority' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l tmp-dir -d 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory\'s staging/, /var/lib/kfadmin/staging]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l compression-level -d 'gzip level, 1 (fastest) to 9 (smallest); Keyfount\'s vaults are encrypted and barely compress' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l encrypt-to -d 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l recipients-file -d 'Encrypt to every recipient listed in FILE (one a line, # comments)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l to -d 'Also upload the verified archive and its .sha256 to s3://BUCKET[/PREFIX] (repeatable; KFADMIN_TO takes several, separated by spaces). Credentials, region and endpoint as the AWS CLI reads them (AWS_ACCESS_KEY_ID…, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL), checked before the snapshot. Parts of 5 MiB, six at a time; a transfer fails only when no byte moved for KFADMIN_OFFSITE_IDLE (60s), never for being slow' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l metrics-file -d 'Write Prometheus textfile-collector metrics here (atomically), success or failure' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l ping-url -d 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l online -d 'Copy the database while the server keeps running (SQLite online backup API)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l cold -d 'Stop the container, copy its data directory, start it again (needs --container)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l passphrase -d 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l plaintext-offsite -d 'Allow --to without encryption: the database holds the server\'s long-term keys, so a plaintext archive is refused offsite unless this is given'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l verify-offsite -d 'After each upload, read the whole object back and check its sha256 (besides its size and its sidecar, always checked); a read-back that fails keeps the copy, unchecked'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l dry-run -d 'Check everything a backup checks first (the database or container, the name, the encryption, the offsite locations) and say what would be done; write, lock, stop and ping nothing'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand backup" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l tmp-dir -d 'Where to unpack the database for the SQLite checks (a private directory is made there)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s i -l identity -d 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l quick -d 'Stop before the SQLite checks (no need to unpack the database)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand verify" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l at -d 'Restore the database as of TIME from the repository\'s point-in-time chain (kfadmin replicate): RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). The state of the last transaction seen committed at or before TIME, rebuilt and checked against the checksum recorded for that point and integrity_check before anything is touched' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l chain -d 'With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed only when the repository holds chains of several databases and none is of the target' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l data-dir -d 'Keyfount\'s data directory on this host (the one that holds keyfount.db)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s c -l container -d 'The Keyfount container: a name, an id, or a Compose service name' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l compose-project -d 'With --container: the Compose project, when several projects have that service' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l db-path -d 'With --container: the database\'s path inside the container' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l encrypt-to -d 'With --container: encrypt the pre-restore safety archive to this recipient (age1…, ssh-…); repeatable' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l recipients-file -d 'With --container: encrypt the pre-restore safety archive to every recipient in FILE' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s r -l repo -d 'With --container: the repository (a directory) the pre-restore safety archive goes to' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l tmp-dir -d 'Where kfadmin unpacks and checks the backup before it swaps it in (created 0700, emptied when kfadmin ends) [default: the state directory\'s staging/, /var/lib/kfadmin/staging]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l stop-timeout -d 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container\'s own stop timeout, or 10]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l settle -d 'How long the container must stay running to count as up (without a healthcheck)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l health-timeout -d 'How long to wait for a healthcheck to report healthy [default: what the container\'s healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s i -l identity -d 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l no-rollback -d 'Keep the restored data even if the container does not come up on it'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l force -d 'Restore even when the plan warns that the archive may be the wrong one (another container\'s or path\'s, no Keyfount schema, less than half the size of the current database, older than the newest backup of the target in the repository or beside it); needed with --yes, where there is no second question to answer'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s y -l yes -d 'Do not ask for confirmation (needed when stdin is not a terminal)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l dry-run -d 'Verify and show the plan, then stop without changing anything'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand restore" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l name -d 'Only the archives of this name (a host or container, e.g. in a fleet\'s bucket); KFADMIN_NAME, which names the archives backup writes, does not filter list' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l check -d 'Check every archive against its .sha256 sidecar (reads every archive in full)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand list" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-last -d 'Keep the N newest archives' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-daily -d 'Keep the newest archive of each of the last N days that have one' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-weekly -d 'Keep the newest archive of each of the last N ISO weeks that have one' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-monthly -d 'Keep the newest archive of each of the last N months that have one' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-pre-restore -d 'Keep the N newest pre-restore safety copies of each name (they are never counted as backups)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-pre-restore-within -d 'Keep every pre-restore safety copy younger than this too, however many there are (the first one may be the only copy of the data from before an incident; 0s: count only)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-commits-within -d 'Point-in-time chains: keep every commit younger than this; older commits are merged into one point per minute (compaction)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-minutely-within -d 'Point-in-time chains: one point per minute up to this age, one per hour after it' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l keep-points-within -d 'Point-in-time chains: keep the points of this long back and every chain they need; remove whole chains that only hold older points [default: keep every chain]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l tmp-dir -d 'Where a remote archive without a sidecar is downloaded for its check (a private directory is made there) [default: the state directory\'s staging/]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l dry-run -d 'Show KEEP or REMOVE and the deciding rule for each archive; remove nothing'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand prune" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l db -d 'The Keyfount database file on this host' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s c -l container -d 'The Keyfount container: a name, an id, or a Compose service name' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l compose-project -d 'With --container: the Compose project, when several projects have that service' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l db-path -d 'With --container: the database\'s path inside the container' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l to -d 'Also check the newest backup at this offsite location, s3://BUCKET[/PREFIX], against --max-age (repeatable; KFADMIN_TO takes several, separated by spaces)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l max-age -d 'The oldest the last backup may be (e.g. 26h, 2d, 90m)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l max-drill-age -d 'A problem when the last drill that passed (`kfadmin drill`) is older than this (e.g. 8d), or there is none, or it was of a backup older than this or of another server' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l name -d 'The archives\' name, as backup --name wrote them [default: the container\'s name, or the database file\'s name without .db]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l max-lag -d 'Check point-in-time replication of this database in the repository: a problem when its chain lags more than this (e.g. 10s), its follower stopped reporting, or it is broken' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l metrics-file -d 'With --max-lag: write Prometheus textfile-collector metrics of the replication here (atomically)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l ping-url -d 'Ping this URL healthchecks.io-style: URL when all is well, URL/fail with the problems' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand status" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l at -d 'Drill the database as of TIME, rebuilt from the repository\'s point-in-time chain (kfadmin replicate) and checked against that point\'s checksum and integrity_check: RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). Without --container, the container the chain was replicated from' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l chain -d 'With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed only when the repository holds chains of several databases and none is of --container' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s c -l container -d 'The Keyfount container: a name, an id, or a Compose service name' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l compose-project -d 'With --container: the Compose project, when several projects have that service' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l db-path -d 'With --container: the database\'s path inside the container' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s r -l repo -d 'The repository to take the newest backup from: a backup directory or s3://BUCKET[/PREFIX]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l settle -d 'How long the copy must stay running to count as up (without a healthcheck)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l health-timeout -d 'How long to wait for the copy\'s healthcheck to report healthy [default: what the healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l tmp-dir -d 'Where kfadmin unpacks and checks the backup (created 0700, emptied when kfadmin ends) [default: the state directory\'s staging/, /var/lib/kfadmin/staging]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l name -d 'Drill the newest backup of this name, as backup --name wrote it [default: the container\'s name]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s i -l identity -d 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l metrics-file -d 'Write Prometheus textfile-collector metrics here (atomically), success or failure' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l ping-url -d 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l dry-run -d 'Find the container, check its image, and name the archives the drill would verify and boot a copy on; verify, create, lock and ping nothing'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand drill" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l db-name -d 'The database\'s file name in the tarball' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -s r -l repo -d 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l name -d 'First part of the archive\'s name [default: the container\'s name, or the database file\'s name without .db; import: the tarball\'s name without .tar.gz]' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l nice -d 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin\'s own priority' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l tmp-dir -d 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory\'s staging/, /var/lib/kfadmin/staging]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l compression-level -d 'gzip level, 1 (fastest) to 9 (smallest); Keyfount\'s vaults are encrypted and barely compress' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l encrypt-to -d 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l recipients-file -d 'Encrypt to every recipient listed in FILE (one a line, # comments)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l salvage -d 'When the database fails its checks, archive what can still be read of it, marked salvaged, instead of refusing'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l without-wal -d 'With --salvage: salvage the database file alone, as captured, leaving the tarball\'s -wal out (its committed transactions are lost; the report says how many)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l passphrase -d 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l dry-run -d 'Check the tarball, the name and the encryption and say what would be written; unpack, write and lock nothing'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand import" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -l command -d 'Only the settings of this command (backup, restore, prune, …)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s c -l container -d 'The Keyfount container the jobs back up and drill' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l metrics-file -d 'The backup and drill jobs write Prometheus metrics here' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l at -d 'The nightly backup\'s time (local time, HH:MM); the weekly drill runs on Sundays 90 minutes later' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l keep-daily -d 'The prune job\'s --keep-daily' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l keep-weekly -d 'The prune job\'s --keep-weekly' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l keep-monthly -d 'The prune job\'s --keep-monthly' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l init -d 'systemd timers or a cron file [default: systemd when it runs the system, else cron]' -r -f -a "systemd\t''
cron\t''"
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l root -d 'Install under this directory instead of / (an image being built): the timers are enabled by their links, without systemctl' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l no-drill -d 'No weekly drill'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l install -d 'Write the files and enable the timers'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l force -d 'Replace files of the same names that kfadmin did not write'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand schedule" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l db -d 'The Keyfount database file on this host' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s c -l container -d 'The Keyfount container: a name, an id, or a Compose service name' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l compose-project -d 'With --container: the Compose project, when several projects have that service' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l db-path -d 'With --container: the database\'s path inside the container' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s r -l repo -d 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l interval -d 'How often the WAL is read (at most 500ms: every commit must be durable within a second)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l tmp-dir -d 'Where the base is staged before it is archived (a private directory is made there)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l duration -d 'Stop (as on SIGTERM) after this long (tests and benchmarks)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l metrics-file -d 'Write Prometheus textfile-collector metrics of the replication here (lag, what was shipped), every 2 seconds and at exit, atomically' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l ping-url -d 'Ping URL/fail (healthchecks.io-style) when replicate exits with an error' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l compact-every -d 'Compact the chain in the background this often (as `prune` does; 0s: never)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l keep-commits-within -d 'Compaction keeps every commit younger than this; older ones become one point per minute' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l keep-minutely-within -d 'Compaction keeps one point per minute up to this age, one per hour after it' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l new-base-every -d 'Start a new chain on a new base (a verified online backup) this often (0s: never)' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand replicate" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand completions" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -l lock-wait -d 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid' -r
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -l passphrase-file -d 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)' -r -F
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -l json -d 'Print exactly one JSON object on stdout at the end, and nothing else there'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -s q -l quiet -d 'Print only errors and warnings (and the JSON report with --json)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -l no-progress -d 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -s v -l verbose -d 'Say more about each step (repeat for more)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -s h -l help -d 'Print help'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand manpages" -s V -l version -d 'Print version'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "backup" -d 'Take a consistent, checksummed, verified backup'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "verify" -d 'Check archives: checksums, gzip, tar, manifest, SQLite integrity'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "restore" -d 'Restore a backup into a container or a data directory'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "list" -d 'List the kfadmin archives in a backup directory or an S3 location, newest first'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "prune" -d 'Remove old archives by grandfather-father-son retention (as restic\'s forget)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "status" -d 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "drill" -d 'Prove that a backup brings the server back: boot a throwaway copy of the container on it'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "import" -d 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "config" -d 'The configuration file: every setting and where it comes from'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "schedule" -d 'Print, or install and enable, the systemd timers (or cron file) that run the backups'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "replicate" -d 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "manpages" -d 'Write the man pages (kfadmin.1 and one per subcommand) into a directory'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and not __fish_seen_subcommand_from backup verify restore list prune status drill import config schedule replicate completions manpages help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kfadmin -n "__fish_kfadmin_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'

# Dynamic completion (kfadmin __complete): container names from the engine, archive names from the repository.
complete -c kfadmin -n "__fish_seen_subcommand_from backup restore drill status schedule" -s c -l container -x -a "(kfadmin __complete containers)"
complete -c kfadmin -n "__fish_seen_subcommand_from verify restore drill; and not string match -q -- '-*' (commandline -ct)" -f -a "(kfadmin __complete archives (commandline -opc) -- (commandline -ct))"
