#!/usr/bin/env node
'use strict';
// Create the app's SQLite database, data/app.db, with some rows, using the
// sqlite3 command line. Refuses to overwrite an existing database.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const db = path.join(root, 'data', 'app.db');
const rows = Number(process.argv[2] ?? 1000);

if (fs.existsSync(db)) {
  console.error(`${path.relative(process.cwd(), db)} exists; not overwriting it`);
  process.exit(1);
}
fs.mkdirSync(path.dirname(db), { recursive: true });
const sql = `
PRAGMA journal_mode = wal;
CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${rows})
INSERT INTO todos (title, done, created_at)
  SELECT 'todo number ' || x, x % 3 = 0, datetime('2026-01-01', '+' || x || ' minutes') FROM n;
`;
try {
  execFileSync('sqlite3', [db], { input: sql, stdio: ['pipe', 'ignore', 'inherit'] });
} catch (e) {
  if (e.code === 'ENOENT') console.error('create-db needs the sqlite3 command line (apt-get install sqlite3)');
  process.exit(1);
}
console.log(`wrote ${path.relative(process.cwd(), db)} with ${rows} todos`);
