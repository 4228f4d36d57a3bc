
use builtin;
use str;

set edit:completion:arg-completer[kfadmin] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'kfadmin'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'kfadmin'= {
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand backup 'Take a consistent, checksummed, verified backup'
            cand verify 'Check archives: checksums, gzip, tar, manifest, SQLite integrity'
            cand restore 'Restore a backup into a container or a data directory'
            cand list 'List the kfadmin archives in a backup directory or an S3 location, newest first'
            cand prune 'Remove old archives by grandfather-father-son retention (as restic''s forget)'
            cand status 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old'
            cand drill 'Prove that a backup brings the server back: boot a throwaway copy of the container on it'
            cand import 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive'
            cand config 'The configuration file: every setting and where it comes from'
            cand schedule 'Print, or install and enable, the systemd timers (or cron file) that run the backups'
            cand replicate 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT'
            cand completions 'Print a shell completion script to stdout'
            cand manpages 'Write the man pages (kfadmin.1 and one per subcommand) into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kfadmin;backup'= {
            cand --db 'The Keyfount database file on this host'
            cand -c 'The Keyfount container: a name, an id, or a Compose service name'
            cand --container 'The Keyfount container: a name, an id, or a Compose service name'
            cand --compose-project 'With --container: the Compose project, when several projects have that service'
            cand --db-path 'With --container: the database''s path inside the container'
            cand --stop-timeout 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container''s own stop timeout, or 10]'
            cand -r 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works'
            cand --repo 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works'
            cand --name 'First part of the archive''s name [default: the container''s name, or the database file''s name without .db; import: the tarball''s name without .tar.gz]'
            cand --nice 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin''s own priority'
            cand --tmp-dir 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]'
            cand --compression-level 'gzip level, 1 (fastest) to 9 (smallest); Keyfount''s vaults are encrypted and barely compress'
            cand --encrypt-to 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable'
            cand --recipients-file 'Encrypt to every recipient listed in FILE (one a line, # comments)'
            cand --to 'Also upload the verified archive and its .sha256 to s3://BUCKET[/PREFIX] (repeatable; KFADMIN_TO takes several, separated by spaces). Credentials, region and endpoint as the AWS CLI reads them (AWS_ACCESS_KEY_ID…, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL), checked before the snapshot. Parts of 5 MiB, six at a time; a transfer fails only when no byte moved for KFADMIN_OFFSITE_IDLE (60s), never for being slow'
            cand --metrics-file 'Write Prometheus textfile-collector metrics here (atomically), success or failure'
            cand --ping-url 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --online 'Copy the database while the server keeps running (SQLite online backup API)'
            cand --cold 'Stop the container, copy its data directory, start it again (needs --container)'
            cand --passphrase 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file'
            cand --plaintext-offsite 'Allow --to without encryption: the database holds the server''s long-term keys, so a plaintext archive is refused offsite unless this is given'
            cand --verify-offsite 'After each upload, read the whole object back and check its sha256 (besides its size and its sidecar, always checked); a read-back that fails keeps the copy, unchecked'
            cand --dry-run 'Check everything a backup checks first (the database or container, the name, the encryption, the offsite locations) and say what would be done; write, lock, stop and ping nothing'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;verify'= {
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --tmp-dir 'Where to unpack the database for the SQLite checks (a private directory is made there)'
            cand -i 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --identity 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --quick 'Stop before the SQLite checks (no need to unpack the database)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;restore'= {
            cand --at 'Restore the database as of TIME from the repository''s point-in-time chain (kfadmin replicate): RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). The state of the last transaction seen committed at or before TIME, rebuilt and checked against the checksum recorded for that point and integrity_check before anything is touched'
            cand --data-dir 'Keyfount''s data directory on this host (the one that holds keyfount.db)'
            cand -c 'The Keyfount container: a name, an id, or a Compose service name'
            cand --container 'The Keyfount container: a name, an id, or a Compose service name'
            cand --compose-project 'With --container: the Compose project, when several projects have that service'
            cand --db-path 'With --container: the database''s path inside the container'
            cand --encrypt-to 'With --container: encrypt the pre-restore safety archive to this recipient (age1…, ssh-…); repeatable'
            cand --recipients-file 'With --container: encrypt the pre-restore safety archive to every recipient in FILE'
            cand -r 'With --container: the repository (a directory) the pre-restore safety archive goes to'
            cand --repo 'With --container: the repository (a directory) the pre-restore safety archive goes to'
            cand --tmp-dir 'Where kfadmin unpacks and checks the backup before it swaps it in (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]'
            cand --stop-timeout 'How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container''s own stop timeout, or 10]'
            cand --settle 'How long the container must stay running to count as up (without a healthcheck)'
            cand --health-timeout 'How long to wait for a healthcheck to report healthy [default: what the container''s healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]'
            cand -i 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --identity 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --no-rollback 'Keep the restored data even if the container does not come up on it'
            cand --force 'Restore even when the plan warns that the archive may be the wrong one (another container''s or path''s, no Keyfount schema, less than half the size of the current database, older than the newest backup of the target in the repository or beside it); needed with --yes, where there is no second question to answer'
            cand -y 'Do not ask for confirmation (needed when stdin is not a terminal)'
            cand --yes 'Do not ask for confirmation (needed when stdin is not a terminal)'
            cand --dry-run 'Verify and show the plan, then stop without changing anything'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;list'= {
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --name 'Only the archives of this name (a host or container, e.g. in a fleet''s bucket); KFADMIN_NAME, which names the archives backup writes, does not filter list'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --check 'Check every archive against its .sha256 sidecar (reads every archive in full)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;prune'= {
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --keep-last 'Keep the N newest archives'
            cand --keep-daily 'Keep the newest archive of each of the last N days that have one'
            cand --keep-weekly 'Keep the newest archive of each of the last N ISO weeks that have one'
            cand --keep-monthly 'Keep the newest archive of each of the last N months that have one'
            cand --keep-pre-restore 'Keep the N newest pre-restore safety copies of each name (they are never counted as backups)'
            cand --keep-pre-restore-within 'Keep every pre-restore safety copy younger than this too, however many there are (the first one may be the only copy of the data from before an incident; 0s: count only)'
            cand --keep-commits-within 'Point-in-time chains: keep every commit younger than this; older commits are merged into one point per minute (compaction)'
            cand --keep-minutely-within 'Point-in-time chains: one point per minute up to this age, one per hour after it'
            cand --keep-points-within 'Point-in-time chains: keep the points of this long back and every chain they need; remove whole chains that only hold older points [default: keep every chain]'
            cand --tmp-dir 'Where a remote archive without a sidecar is downloaded for its check (a private directory is made there) [default: the state directory''s staging/]'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --dry-run 'Show KEEP or REMOVE and the deciding rule for each archive; remove nothing'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;status'= {
            cand --db 'The Keyfount database file on this host'
            cand -c 'The Keyfount container: a name, an id, or a Compose service name'
            cand --container 'The Keyfount container: a name, an id, or a Compose service name'
            cand --compose-project 'With --container: the Compose project, when several projects have that service'
            cand --db-path 'With --container: the database''s path inside the container'
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX]'
            cand --to 'Also check the newest backup at this offsite location, s3://BUCKET[/PREFIX], against --max-age (repeatable; KFADMIN_TO takes several, separated by spaces)'
            cand --max-age 'The oldest the last backup may be (e.g. 26h, 2d, 90m)'
            cand --max-drill-age 'A problem when the last drill that passed (`kfadmin drill`) is older than this (e.g. 8d), or there is none, or it was of a backup older than this or of another server'
            cand --name 'The archives'' name, as backup --name wrote them [default: the container''s name, or the database file''s name without .db]'
            cand --max-lag 'Check point-in-time replication of this database in the repository: a problem when its chain lags more than this (e.g. 10s), its follower stopped reporting, or it is broken'
            cand --metrics-file 'With --max-lag: write Prometheus textfile-collector metrics of the replication here (atomically)'
            cand --ping-url 'Ping this URL healthchecks.io-style: URL when all is well, URL/fail with the problems'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;drill'= {
            cand --at 'Drill the database as of TIME, rebuilt from the repository''s point-in-time chain (kfadmin replicate) and checked against that point''s checksum and integrity_check: RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). Without --container, the container the chain was replicated from'
            cand -c 'The Keyfount container: a name, an id, or a Compose service name'
            cand --container 'The Keyfount container: a name, an id, or a Compose service name'
            cand --compose-project 'With --container: the Compose project, when several projects have that service'
            cand --db-path 'With --container: the database''s path inside the container'
            cand -r 'The repository to take the newest backup from: a backup directory or s3://BUCKET[/PREFIX]'
            cand --repo 'The repository to take the newest backup from: a backup directory or s3://BUCKET[/PREFIX]'
            cand --settle 'How long the copy must stay running to count as up (without a healthcheck)'
            cand --health-timeout 'How long to wait for the copy''s healthcheck to report healthy [default: what the healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]'
            cand --tmp-dir 'Where kfadmin unpacks and checks the backup (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]'
            cand --name 'Drill the newest backup of this name, as backup --name wrote it [default: the container''s name]'
            cand -i 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --identity 'An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)'
            cand --metrics-file 'Write Prometheus textfile-collector metrics here (atomically), success or failure'
            cand --ping-url 'Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --dry-run 'Find the container, check its image, and name the archives the drill would verify and boot a copy on; verify, create, lock and ping nothing'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;import'= {
            cand --db-name 'The database''s file name in the tarball'
            cand -r 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works'
            cand --repo 'The repository: the directory the archive is written to (created with mode 0700 when missing); KFADMIN_BACKUP_DIR, its old variable, still works'
            cand --name 'First part of the archive''s name [default: the container''s name, or the database file''s name without .db; import: the tarball''s name without .tar.gz]'
            cand --nice 'CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken or the container runs again: the server keeps its speed; 0 keeps kfadmin''s own priority'
            cand --tmp-dir 'Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied when kfadmin ends) [default: the state directory''s staging/, /var/lib/kfadmin/staging]'
            cand --compression-level 'gzip level, 1 (fastest) to 9 (smallest); Keyfount''s vaults are encrypted and barely compress'
            cand --encrypt-to 'Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable'
            cand --recipients-file 'Encrypt to every recipient listed in FILE (one a line, # comments)'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --salvage 'When the database fails its checks, archive what can still be read of it, marked salvaged, instead of refusing'
            cand --without-wal 'With --salvage: salvage the database file alone, as captured, leaving the tarball''s -wal out (its committed transactions are lost; the report says how many)'
            cand --passphrase 'Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or --passphrase-file'
            cand --dry-run 'Check the tarball, the name and the encryption and say what would be written; unpack, write and lock nothing'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;config'= {
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kfadmin;config;show'= {
            cand --command 'Only the settings of this command (backup, restore, prune, …)'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;config;help'= {
            cand show 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kfadmin;config;help;show'= {
        }
        &'kfadmin;config;help;help'= {
        }
        &'kfadmin;schedule'= {
            cand -c 'The Keyfount container the jobs back up and drill'
            cand --container 'The Keyfount container the jobs back up and drill'
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --metrics-file 'The backup and drill jobs write Prometheus metrics here'
            cand --at 'The nightly backup''s time (local time, HH:MM); the weekly drill runs on Sundays 90 minutes later'
            cand --keep-daily 'The prune job''s --keep-daily'
            cand --keep-weekly 'The prune job''s --keep-weekly'
            cand --keep-monthly 'The prune job''s --keep-monthly'
            cand --init 'systemd timers or a cron file [default: systemd when it runs the system, else cron]'
            cand --root 'Install under this directory instead of / (an image being built): the timers are enabled by their links, without systemctl'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --no-drill 'No weekly drill'
            cand --install 'Write the files and enable the timers'
            cand --force 'Replace files of the same names that kfadmin did not write'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;replicate'= {
            cand --db 'The Keyfount database file on this host'
            cand -c 'The Keyfount container: a name, an id, or a Compose service name'
            cand --container 'The Keyfount container: a name, an id, or a Compose service name'
            cand --compose-project 'With --container: the Compose project, when several projects have that service'
            cand --db-path 'With --container: the database''s path inside the container'
            cand -r 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --repo 'The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]'
            cand --interval 'How often the WAL is read (at most 500ms: every commit must be durable within a second)'
            cand --tmp-dir 'Where the base is staged before it is archived (a private directory is made there)'
            cand --duration 'Stop (as on SIGTERM) after this long (tests and benchmarks)'
            cand --metrics-file 'Write Prometheus textfile-collector metrics of the replication here (lag, what was shipped), every 2 seconds and at exit, atomically'
            cand --ping-url 'Ping URL/fail (healthchecks.io-style) when replicate exits with an error'
            cand --compact-every 'Compact the chain in the background this often (as `prune` does; 0s: never)'
            cand --keep-commits-within 'Compaction keeps every commit younger than this; older ones become one point per minute'
            cand --keep-minutely-within 'Compaction keeps one point per minute up to this age, one per hour after it'
            cand --new-base-every 'Start a new chain on a new base (a verified online backup) this often (0s: never)'
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;completions'= {
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;manpages'= {
            cand --lock-wait 'How long to wait for another kfadmin run working on the same backup directory, data directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid'
            cand --passphrase-file 'The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way a configuration file names it (it never holds the secret itself)'
            cand --json 'Print exactly one JSON object on stdout at the end, and nothing else there'
            cand -q 'Print only errors and warnings (and the JSON report with --json)'
            cand --quiet 'Print only errors and warnings (and the JSON report with --json)'
            cand --no-progress 'Never draw progress bars (they are only drawn when stderr is a terminal anyway)'
            cand -v 'Say more about each step (repeat for more)'
            cand --verbose 'Say more about each step (repeat for more)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kfadmin;help'= {
            cand backup 'Take a consistent, checksummed, verified backup'
            cand verify 'Check archives: checksums, gzip, tar, manifest, SQLite integrity'
            cand restore 'Restore a backup into a container or a data directory'
            cand list 'List the kfadmin archives in a backup directory or an S3 location, newest first'
            cand prune 'Remove old archives by grandfather-father-son retention (as restic''s forget)'
            cand status 'How a Keyfount server and its backups stand; exit 1 when the last backup is too old'
            cand drill 'Prove that a backup brings the server back: boot a throwaway copy of the container on it'
            cand import 'Turn a tarball made by hand (tar czf) into a verified kfadmin archive'
            cand config 'The configuration file: every setting and where it comes from'
            cand schedule 'Print, or install and enable, the systemd timers (or cron file) that run the backups'
            cand replicate 'Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT'
            cand completions 'Print a shell completion script to stdout'
            cand manpages 'Write the man pages (kfadmin.1 and one per subcommand) into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kfadmin;help;backup'= {
        }
        &'kfadmin;help;verify'= {
        }
        &'kfadmin;help;restore'= {
        }
        &'kfadmin;help;list'= {
        }
        &'kfadmin;help;prune'= {
        }
        &'kfadmin;help;status'= {
        }
        &'kfadmin;help;drill'= {
        }
        &'kfadmin;help;import'= {
        }
        &'kfadmin;help;config'= {
            cand show 'Print every effective setting of every command (or of one) and where it came from: the environment (naming the variable), the file (naming it and its table), or the default'
        }
        &'kfadmin;help;config;show'= {
        }
        &'kfadmin;help;schedule'= {
        }
        &'kfadmin;help;replicate'= {
        }
        &'kfadmin;help;completions'= {
        }
        &'kfadmin;help;manpages'= {
        }
        &'kfadmin;help;help'= {
        }
    ]
    $completions[$command]
}
