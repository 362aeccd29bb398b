/**
 * The zero-retention audit: everything the authentication server and the shop kept — every row
 * of every table, every log line — as one text; every file of the system's data folder but the
 * settlement servers' account stores; every server's audit log; and every form a piece of personal
 * data could take in it (plain, spaced, base64 and base64url).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import type { KessaiSystem } from '@kessai/cli/system';

export async function dumpTables(db: Db): Promise<{ text: string; rows: number }> {
  const tables = await db.query<{ table_name: string }>("select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'");
  let text = '';
  let rows = 0;
  for (const { table_name } of tables) {
    const dumped = await db.query<{ row: string }>(`select row_to_json(t)::text as row from "${table_name}" t`);
    rows += dumped.length;
    for (const { row } of dumped) text += `${table_name}: ${row}\n`;
  }
  return { text, rows };
}

export async function collectAuthAndShopRetention(system: KessaiSystem): Promise<{ text: string; rows: number; logLines: number }> {
  const auth = await dumpTables(system.auth.db);
  const shop = await dumpTables(system.shop.db);
  const logs = (await readFile(system.logFiles.auth, 'utf8')) + (await readFile(system.logFiles.shop, 'utf8'));
  return { text: auth.text + shop.text + logs, rows: auth.rows + shop.rows, logLines: logs.split('\n').length };
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const base64Forms = (value: string) => [...new Set([Buffer.from(value).toString('base64').replace(/=+$/, ''), Buffer.from(value).toString('base64url')])];

/** Every test card's number, holder name, expiry and PIN, in each form that could leak. */
/** `value` as a token of its own: no letter or digit touches it (a PIN is not "found" inside a timestamp, a request id or a trace id). */
export function wholeToken(value: string): RegExp {
  return new RegExp(`(?<![0-9A-Za-z])${escape(value)}(?![0-9A-Za-z])`);
}

export function personalDataNeedles(): Array<{ label: string; pattern: RegExp }> {
  const needles: Array<{ label: string; pattern: RegExp }> = [];
  const add = (label: string, value: string, whole = false) => {
    needles.push({ label: `${label} (plain)`, pattern: new RegExp(whole ? wholeToken(value).source : escape(value), 'i') });
    for (const form of base64Forms(value)) needles.push({ label: `${label} (base64)`, pattern: new RegExp(escape(form)) });
  };
  for (const issuer of demoIssuers) {
    for (const card of issuer.cards) {
      const last4 = card.cardNumber.slice(-4);
      add(`card …${last4} number`, card.cardNumber);
      add(`card …${last4} number spaced`, card.cardNumber.replace(/(\d{4})(?=\d)/g, '$1 '));
      add(`card …${last4} holder name`, card.holderName);
      add(`card …${last4} expiry`, card.expiry);
      // A four-digit PIN is looked for as a whole token, so it is not "found" inside a timestamp.
      add(`card …${last4} PIN`, card.pin, true);
    }
  }
  return needles;
}

/**
 * Every file under the system's data folder — logs of every role, keys, certificates, the shop's
 * files, any PGlite folder — read byte for byte (latin1, so binary files are searched too), except
 * the settlement servers' account stores (`settlement-<issuer>/db`): they hold the cards, encrypted,
 * and their tables are searched for card data by test/pan-at-rest.test.ts.
 */
export async function collectDataFolder(system: KessaiSystem): Promise<{ text: string; files: string[] }> {
  const accountStores = new Set(system.settlements.map((s) => path.join(system.dataDir, `settlement-${s.issuer.id}`, 'db')));
  const files: string[] = [];
  let text = '';
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!accountStores.has(full)) await walk(full);
      } else if (entry.isFile()) {
        files.push(path.relative(system.dataDir, full));
        text += `${full}: ${(await readFile(full)).toString('latin1')}\n`;
      }
    }
  };
  await walk(system.dataDir);
  return { text, files };
}

/** The audit_log rows of every server, the settlement servers' included. */
export async function collectAuditRows(system: KessaiSystem): Promise<{ text: string; rows: number }> {
  const dbs: Array<[string, Db]> = [['auth', system.auth.db], ['shop', system.shop.db], ...system.settlements.map((s) => [`settlement-${s.issuer.id}`, s.config.db] as [string, Db])];
  let text = '';
  let rows = 0;
  for (const [role, db] of dbs) {
    const dumped = await db.query<{ row: string }>('select row_to_json(a)::text as row from audit_log a order by seq');
    rows += dumped.length;
    for (const { row } of dumped) text += `${role} audit_log: ${row}\n`;
  }
  return { text, rows };
}

/** The labels of every needle found in `text`. */
export function findPersonalData(text: string): string[] {
  return personalDataNeedles().filter((needle) => needle.pattern.test(text)).map((needle) => needle.label);
}
