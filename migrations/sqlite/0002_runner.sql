-- Runner storage (SQLite): sealed secrets, repository settings, the workspace kill switch and
-- the run record. Keep in step with ../postgres/0002_runner.sql.

-- Sealed with AES-256-GCM; nonce and ciphertext are base64. The AAD binds workspace id, name and
-- key version, so a row copied to another workspace or name does not open.
CREATE TABLE secrets (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE INDEX secrets_key_version ON secrets(key_version);

ALTER TABLE repos ADD COLUMN default_branch TEXT NOT NULL DEFAULT 'main';
-- The name of a secret of the same workspace (deploy key or token), never the value.
ALTER TABLE repos ADD COLUMN credential TEXT;
-- Pinned SSH host keys, OpenSSH known_hosts lines.
ALTER TABLE repos ADD COLUMN ssh_known_hosts TEXT;
ALTER TABLE repos ADD COLUMN branch_prefix TEXT NOT NULL DEFAULT 'paddock/';

-- The kill switch: 1 stops new claims in the workspace and tells runners to stop live runs.
ALTER TABLE workspaces ADD COLUMN runs_paused INTEGER NOT NULL DEFAULT 0;

ALTER TABLE runs ADD COLUMN exit_status INTEGER;
ALTER TABLE runs ADD COLUMN outcome TEXT;
ALTER TABLE runs ADD COLUMN commit_id TEXT;
ALTER TABLE runs ADD COLUMN diff_stat TEXT;
ALTER TABLE runs ADD COLUMN egress TEXT;
ALTER TABLE runs ADD COLUMN agent_ms INTEGER;
ALTER TABLE runs ADD COLUMN total_ms INTEGER;
