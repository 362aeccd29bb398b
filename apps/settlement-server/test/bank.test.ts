/**
 * A bank is a description (bank.ts): the demo banks are two such files, an invalid one is refused
 * naming the field, and the description sets the settlement server's name, mode, hold timeout, fees
 * and business-day time zone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankDescription, bankKeySpecs, demoBanks, readBankFile, settlementConfigOfBank } from '../src/index.ts';

const hokuto = {
  id: 'hokuto-bank',
  name: 'Hokuto Regional Bank',
  cardRanges: ['4571', '35'],
  conversionMode: 'pass_through',
  cipher2: 'ECDH-ES+A256KW',
  holdTimeoutSeconds: 86_400,
  fees: { default: { basisPoints: 250, fixedMinor: '0' }, perCurrency: { USD: { basisPoints: 290, fixedMinor: '30' } } },
  businessDayTimeZone: 'Asia/Tokyo',
};

describe('bank descriptions', () => {
  it('describes the demo banks as data: Sakura re-seals with ECDH-ES+A256KW, Fuji passes through with RSA-OAEP-256', () => {
    expect(demoBanks.map((b) => [b.id, b.conversionMode, b.cipher2, b.cardRanges])).toEqual([
      ['sakura-bank', 'reseal', 'ECDH-ES+A256KW', ['4']],
      ['fuji-bank', 'pass_through', 'RSA-OAEP-256', ['5']],
    ]);
  });

  it('gives the settlement server its name, mode, hold timeout, fees, time zone and cipher-2 algorithm', () => {
    const bank = bankDescription.parse(hokuto);
    const config = settlementConfigOfBank(bank, { workerIntervalMs: 0 });
    expect(config).toMatchObject({ issuerId: 'hokuto-bank', name: 'Hokuto Regional Bank', conversionMode: 'pass_through', holdTimeoutSeconds: 86_400 });
    expect(config.settlement).toEqual({ workerIntervalMs: 0, timeZone: 'Asia/Tokyo', defaultFees: { USD: { basisPoints: 290, fixedMinor: 30n } }, defaultFee: { basisPoints: 250, fixedMinor: 0n } });
    expect(bankKeySpecs(bank)[0]).toEqual({ name: 'cipher2', use: 'enc', alg: 'ECDH-ES+A256KW' });
  });

  it('refuses an unknown field, a card range that is not digits, an unknown time zone and a hold timeout out of range, naming each', () => {
    const parsed = bankDescription.safeParse({ ...hokuto, cardRanges: ['45x'], businessDayTimeZone: 'Mars/Olympus', holdTimeoutSeconds: 10, swift: 'HOKUJPJT' });
    expect(parsed.success).toBe(false);
    const paths = parsed.error!.issues.map((issue) => issue.path.join('.') || issue.message);
    expect(paths).toEqual(expect.arrayContaining(['cardRanges.0', 'holdTimeoutSeconds', 'businessDayTimeZone']));
    expect(JSON.stringify(parsed.error!.issues)).toContain('swift');
  });

  it('reads a description file, and refuses a missing or invalid one naming the file and the field', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-bank-'));
    try {
      const file = path.join(dir, 'bank.json');
      await writeFile(file, JSON.stringify(hokuto));
      expect((await readBankFile(file)).id).toBe('hokuto-bank');
      await writeFile(file, JSON.stringify({ ...hokuto, conversionMode: 'copy' }));
      await expect(readBankFile(file)).rejects.toThrow(new RegExp(`invalid bank description ${file}: .*conversionMode`));
      await expect(readBankFile(path.join(dir, 'missing.json'))).rejects.toThrow(/cannot read the bank description .*ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
