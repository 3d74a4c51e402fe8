// A throw-away PostgreSQL server for the hub's tests (tests/pg/start.sh: a Unix socket in its own
// directory, trust authentication; run as `nobody` when the tests run as root).
//
//   const pg = await startPostgres();
//   const hub = await startHub({ env: { COMFYD_HUB_STORE: pg.uri } });
//   ... pg.query('SELECT count(*) FROM prompts') ...
//   await pg.stop();   // also done when the test process exits
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './server.mjs';

const started = new Set();
process.on('exit', () => {
  for (const dir of started) {
    try { execFileSync(path.join(REPO_ROOT, 'tests', 'pg', 'stop.sh'), [dir], { stdio: 'ignore' }); } catch { /* gone */ }
  }
});

export async function startPostgres() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'comfyd-pg-'));
  started.add(dir);
  const uri = execFileSync(path.join(REPO_ROOT, 'tests', 'pg', 'start.sh'), [dir], { encoding: 'utf8' }).trim();
  return {
    uri,
    dir,
    /** The first column of the first row of sql, as psql prints it (no values of the test's own). */
    query(sql) {
      return execFileSync('psql', [uri, '-XAtqc', sql], { encoding: 'utf8' }).trim();
    },
    async stop() {
      started.delete(dir);
      execFileSync(path.join(REPO_ROOT, 'tests', 'pg', 'stop.sh'), [dir], { stdio: 'ignore' });
    },
  };
}
