/**
 * Steps 301–305: enrollment. The terminal sends the personal information and its device public
 * key over TLS; this server checks it, routes it to the issuer by card range, has the issuer
 * check the account (on data already sealed for the issuer), seals the credential (cipher 1, or
 * cipher 2 directly for a pass-through issuer) and keeps only the credential record, with the
 * verifier of the recovery code the payer is shown once (revocation.ts).
 */
import { enrollmentRequest, enrollmentResponse, isExpired, isValidCardNumber, KessaiError, newId, normalizeCardNumber, sealJson, thumbprint, typ, accountCheckResponse, type CredentialPlaintext } from '@kessai/protocol';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { FastifyInstance } from 'fastify';
import type { AuthContext } from '../context.ts';
import { newRecoveryCode, recoveryVerifier, saveRecoveryVerifier } from '../revocation.ts';

export async function enrollmentRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config, issuers, http } = context;

  app.post('/v1/enrollments', { schema: { body: enrollmentRequest, response: { 201: enrollmentResponse } } }, async (request, reply) => {
    const body = request.body;
    // Step 303: check what the terminal sent.
    const cardNumber = normalizeCardNumber(body.card_number);
    if (!isValidCardNumber(cardNumber)) throw new KessaiError('card_invalid');
    if (isExpired(body.expiry, new Date())) throw new KessaiError('card_expired');
    const issuer = await issuers.forCard(cardNumber);
    const credentialId = newId('cred');
    const deviceJkt = await thumbprint(body.device_jwk);
    const header = { typ: typ.credential, cred: credentialId, iss: issuer.route.id, dkt: deviceJkt };
    const plaintext: CredentialPlaintext = { v: 1, holder_name: body.holder_name, card_number: cardNumber, expiry: body.expiry, device_jwk: body.device_jwk };
    const forIssuer = await sealJson(plaintext, issuer.keys.current('enc'), header);

    const check = await http.call('POST', `${issuer.route.baseUrl}/internal/v1/account-checks`, { body: { sealed_credential: forIssuer }, schema: accountCheckResponse, unavailable: 'issuer_unavailable' });
    if (check.status !== 'ok') throw new KessaiError(check.status);

    // Step 304: seal with cipher 1, or hand over the issuer's sealing in pass-through mode.
    const sealed = issuer.metadata.conversion_mode === 'pass_through' ? forIssuer : await sealJson(plaintext, config.keys.current('enc'), header);
    // The recovery code goes to the payer once; only its verifier is kept, beside the record.
    const recoveryCode = newRecoveryCode();
    const verifier = await recoveryVerifier(recoveryCode);
    await config.db.transaction(async (tx) => {
      await tx.query("insert into credentials (id, issuer_id, device_jwk, device_jkt, status) values ($1, $2, $3::text::jsonb, $4, 'active')", [credentialId, issuer.route.id, JSON.stringify(body.device_jwk), deviceJkt]);
      await saveRecoveryVerifier(tx, credentialId, verifier);
    });
    request.log.info({ credential: credentialId, issuer: issuer.route.id, mode: issuer.metadata.conversion_mode }, 'step 305: credential issued');

    // Step 305: the sealed credential goes back to the terminal's storage.
    return reply.code(201).send({
      credential_id: credentialId,
      sealed_credential: sealed,
      issuer: { id: issuer.route.id, name: issuer.metadata.name, conversion_mode: issuer.metadata.conversion_mode, jwks_uri: issuer.metadata.jwks_uri },
      auth_jwks_uri: `${config.publicBaseUrl}/.well-known/jwks.json`,
      recovery_code: recoveryCode.expose(),
    });
  });
}
