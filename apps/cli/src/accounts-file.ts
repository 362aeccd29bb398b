/**
 * The account file a bank's operator imports (`kessai accounts import`): CSV with a header row
 * (RFC 4180: commas, double quotes, "" inside quotes) or a JSON array of objects, one account each,
 * with the fields of accountImportRow and an optional `note` that is not sent. Row N is the file's
 * N-th account (the CSV header not counted). Values are read as written; the bank checks them.
 */
import { accountImportRow, KessaiError, limits, type AccountImportRow } from '@kessai/protocol';

const columns = Object.keys(accountImportRow.shape) as Array<keyof AccountImportRow>;
const ignored = new Set(['note']);

/** CSV records (arrays of fields); a quoted field may hold commas, quotes ("") and line breaks. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;
  const endRecord = () => {
    record.push(field);
    if (record.length > 1 || record[0] !== '') records.push(record);
    if (records.length > limits.accountsImportFileRowsMax + 1) throw new KessaiError('validation_failed', `the file has more than ${limits.accountsImportFileRowsMax} rows: split it`);
    record = [];
    field = '';
    fieldStarted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
      fieldStarted = false;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  if (quoted) throw new KessaiError('validation_failed', 'the CSV file ends inside a quoted field');
  if (field !== '' || record.length > 0) endRecord();
  return records;
}

/** A header name as the import knows it: lower case, spaces and dashes as underscores. */
function columnOf(name: string): string {
  return name.trim().toLowerCase().replace(/[\s-]+/g, '_');
}

function rowOf(entries: Array<[string, unknown]>): AccountImportRow {
  const row: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (ignored.has(name) || value === undefined || value === null || value === '') continue;
    // Amounts are decimal strings; an integer is taken as written, and a boolean (`"test": true`); anything else (a float) is sent unreadable so the bank rejects that row's field.
    row[name] = typeof value === 'string' ? value : (typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'boolean' ? String(value) : '?';
  }
  return row as AccountImportRow;
}

function checkColumns(names: string[]): void {
  const unknown = names.filter((name) => !ignored.has(name) && !(columns as string[]).includes(name));
  // Names the column, which the operator wrote; never a value.
  if (unknown.length > 0) throw new KessaiError('validation_failed', `unknown column(s): ${unknown.join(', ')}; the columns are ${columns.join(', ')} (and note, not sent)`);
}

/** The rows of an account file: JSON when it starts with `[`, else CSV with a header row. */
export function parseAccountFile(text: string): AccountImportRow[] {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trimStart().startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new KessaiError('validation_failed', 'the file starts with [ but is not JSON');
    }
    if (!Array.isArray(json) || json.some((item) => typeof item !== 'object' || item === null || Array.isArray(item))) throw new KessaiError('validation_failed', 'a JSON account file is an array of objects');
    if (json.length > limits.accountsImportFileRowsMax) throw new KessaiError('validation_failed', `the file has more than ${limits.accountsImportFileRowsMax} rows: split it`);
    const objects = json as Array<Record<string, unknown>>;
    checkColumns([...new Set(objects.flatMap((item) => Object.keys(item)))]);
    return objects.map((item) => rowOf(Object.entries(item)));
  }
  const [header, ...records] = parseCsv(body);
  if (!header) throw new KessaiError('validation_failed', 'the file is empty');
  const names = header.map(columnOf);
  checkColumns(names);
  return records.map((record) => rowOf(names.map((name, index) => [name, record[index]?.trim()] as [string, unknown])));
}
