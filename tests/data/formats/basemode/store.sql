-- A basemode-loom database (schema of its _schema.py, user_version 4), two trees.
CREATE TABLE trees (id TEXT PRIMARY KEY, current_node_id TEXT, name TEXT,
  show_model_names INTEGER NOT NULL DEFAULT 1, rewind_split_tokens INTEGER NOT NULL DEFAULT 0,
  global_max_tokens INTEGER NOT NULL DEFAULT 200, global_n_branches INTEGER NOT NULL DEFAULT 1,
  model_plan_json TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  metadata_json TEXT NOT NULL DEFAULT '{}', archived INTEGER NOT NULL DEFAULT 0);
CREATE TABLE nodes (id TEXT PRIMARY KEY, tree_id TEXT NOT NULL,
  parent_id TEXT REFERENCES nodes(id) ON DELETE CASCADE, kind TEXT NOT NULL DEFAULT 'text',
  text TEXT NOT NULL, context_id TEXT REFERENCES nodes(id), model TEXT, strategy TEXT,
  max_tokens INTEGER, temperature REAL, checked_out INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL, metadata_json TEXT NOT NULL DEFAULT '{}');
PRAGMA user_version = 4;
INSERT INTO trees VALUES ('t1', 'x2', 'Diary', 1, 0, 200, 1, '[{"model": "gpt-4o-mini", "n_branches": 2}]', '2025-03-01T09:00:00+00:00', '2025-03-01T10:00:00+00:00', '{"named_from": "prompt"}', 0);
INSERT INTO trees VALUES ('t2', 't2', 'Poem', 1, 0, 200, 1, '[]', '2025-03-02T09:00:00+00:00', '2025-03-02T09:00:00+00:00', '{}', 0);
INSERT INTO nodes VALUES ('t1', 't1', NULL, 'text', 'Dear diary,', NULL, NULL, NULL, NULL, NULL, 0, '2025-03-01T09:00:00+00:00', '{}');
INSERT INTO nodes VALUES ('x1', 't1', 't1', 'text', ' today', NULL, 'gpt-4o-mini', 'completion', 40, 0.8, 0, '2025-03-01T09:01:00+00:00', '{"bookmarked": true}');
INSERT INTO nodes VALUES ('x2', 't1', 't1', 'text', ' tonight', NULL, 'gpt-4o-mini', 'completion', 40, 0.8, 1, '2025-03-01T09:01:01+00:00', '{}');
INSERT INTO nodes VALUES ('t2', 't2', NULL, 'text', 'Roses are red', NULL, NULL, NULL, NULL, NULL, 0, '2025-03-02T09:00:00+00:00', '{}');
INSERT INTO nodes VALUES ('y1', 't2', 't2', 'text', ', violets are blue', NULL, 'davinci-002', 'completion', 20, 1.0, 1, '2025-03-02T09:00:30+00:00', '{}');
