/**
 * The bank's operator at the command line, with the bank's own token (read from
 * `<data>/settlement-<issuer>/operator-token`): `kessai merchants onboard|list` onboards the
 * merchants the bank pays, `kessai credentials revoke --issuer` revokes in the bank's own registry.
 */
import { describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { registerCredentialsCommands } from '../apps/cli/src/credentials-commands.ts';
import { registerMerchantsCommands } from '../apps/cli/src/merchants-commands.ts';
import { demoCard } from './support/system.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { codeOf } from './support/errors.ts';
import { runKessai } from './support/cli.ts';

const kessai = merchantForFile();

/** Runs one `kessai …` command against the test system's data folder; what it printed. */
function kessaiCli(args: string[]): Promise<string> {
  return runKessai((program) => {
    registerMerchantsCommands(program, kessai.system.dataDir);
    registerCredentialsCommands(program, kessai.system.dataDir);
  }, args);
}

const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

describe('the bank’s operator commands', () => {
  it('kessai merchants onboard adds a merchant under its name at one bank, and kessai merchants list shows it with the demo merchant', async () => {
    const id = newId('mer');
    expect(await kessaiCli(['merchants', 'onboard', '--issuer', 'sakura-bank', '--id', id, '--name', 'Uji Tea Stall', '--url', sakura().url])).toBe(`onboarded: ${id} as "Uji Tea Stall" at sakura-bank\n`);
    const listed = await kessaiCli(['merchants', 'list', '--issuer', 'sakura-bank', '--url', sakura().url]);
    expect(listed).toContain(`${id}  Uji Tea Stall`);
    expect(listed).toContain(`${kessai.system.merchant.merchantId}  Kessai Tea House`);
    const [row] = await sakura().config.db.query<{ name: string }>('select name from merchants where id = $1', [id]);
    expect(row?.name).toBe('Uji Tea Stall');
  });

  it('refuses a merchant name payers could misread (bidi control) with validation_failed', async () => {
    await expect(kessaiCli(['merchants', 'onboard', '--issuer', 'sakura-bank', '--id', newId('mer'), '--name', 'Tea\u202eHouse', '--url', sakura().url])).rejects.toThrow(/validation_failed/);
  });

  it('kessai credentials revoke --issuer revokes in the bank’s registry, and the bank refuses the credential from then on', async () => {
    const card = '4242424242424242';
    const wallet = await kessai.payer(card);
    const printed = await kessaiCli(['credentials', 'revoke', wallet.wallet.credential_id, '--issuer', 'sakura-bank', '--url', sakura().url]);
    expect(printed).toMatch(new RegExp(`^revoked: credential ${wallet.wallet.credential_id} at .* \\(by the issuer operator at sakura-bank\\)\\n$`));
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '300', line_items: [{ description: 'Mochi', quantity: 1, unit_price_minor: '300' }] }, idempotencyKey());
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), demoCard(card).pin))).toBe('credential_revoked');
  });
});
