/**
 * Steps 301–305: enrollment. The terminal names the credential id it chose, the issuer it found in
 * the signed directory, its device public key and a PIN block it encrypted to that issuer — which
 * this server cannot open. Re-seal issuers (embodiment 1): the card data arrives in clear over TLS,
 * is checked here, sealed for the issuer (cipher 2) to be verified there, and sealed with cipher 1
 * for the terminal. Pass-through issuers (embodiment 2): the card data arrives already sealed for
 * the issuer by the terminal and is forwarded untouched; this server never sees it. Either way the
 * issuer verifies the card and the PIN and registers the credential (its signed receipt goes back
 * to the terminal); this server keeps only the credential record and the verifier of the recovery
 * code the payer is shown once (revocation.ts).
 */
import {
  checkCredentialBinding,
  enrollmentRequest,
  enrollmentResponse,
  isExpired,
  isValidCardNumber,
  issuerEnrollmentResponse,
  KessaiError,
  normalizeCardNumber,
  readHeader,
  registrationPayload,
  sealJson,
  thumbprint,
  typ,
  verifyJson,
  type CredentialPlaintext,
} from '@kessai/protocol';
import type { z } from 'zod';
import type { resealEnrollmentRequest } from '@kessai/protocol';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { FastifyInstance } from 'fastify';
import type { AuthContext } from '../context.ts';
import type { Issuer } from '../issuers.ts';
import { newRecoveryCode, recoveryVerifier, saveRecoveryVerifier } from '../revocation.ts';
import { credentialIdTaken, saveCredentialRecord } from '../credential-records.ts';

interface Sealed {
  /** What the issuer opens to verify the card (cipher 2). */
  forIssuer: string;
  /** What the terminal stores (cipher 1 in re-seal mode; the same as forIssuer in pass-through). */
  forTerminal: string;
}

/** Step 303–304 for a re-seal issuer: check the card data, seal it for the issuer and with cipher 1. */
async function resealCard(context: AuthContext, issuer: Issuer, body: z.infer<typeof resealEnrollmentRequest>, header: Record<string, string> & { typ: string }): Promise<Sealed> {
  const cardNumber = normalizeCardNumber(body.card_number);
  if (!isValidCardNumber(cardNumber)) throw new KessaiError('card_invalid');
  if (isExpired(body.expiry, new Date())) throw new KessaiError('card_expired');
  if ((await context.issuers.forCard(cardNumber)).route.id !== issuer.route.id) throw new KessaiError('issuer_unknown', `the card is not in the ranges of ${issuer.route.id}`);
  const plaintext: CredentialPlaintext = { v: 1, holder_name: body.holder_name, card_number: cardNumber, expiry: body.expiry, device_jwk: body.device_jwk };
  // step 304: sealed for the issuer (cipher 2) and with cipher 1 for the terminal
  return { forIssuer: await sealJson(plaintext, issuer.keys.current('enc'), header), forTerminal: await sealJson(plaintext, context.config.keys.current('enc'), header) };
}

/** Step 303–304 for a pass-through issuer: the terminal sealed the card for the issuer; only its header is readable here. */
function passThroughCard(issuer: Issuer, sealedCard: string, binding: { credentialId: string; deviceJkt: string }): Sealed {
  checkCredentialBinding(readHeader(sealedCard, 'credential_invalid'), { ...binding, issuerId: issuer.route.id });
  return { forIssuer: sealedCard, forTerminal: sealedCard };
}

export async function enrollmentRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config, issuers, http } = context;

  const summary = 'Enroll a card: a sealed credential for this device (steps 301–305)';
  app.post('/v1/enrollments', { schema: { summary, operationId: 'createEnrollment', body: enrollmentRequest, response: { 201: enrollmentResponse } } }, async (request, reply) => {
    const body = request.body;
    const issuer = await issuers.byId(body.issuer_id);
    const mode = issuer.metadata.conversion_mode;
    const deviceJkt = await thumbprint(body.device_jwk);
    const header = { typ: typ.credential, cred: body.credential_id, iss: issuer.route.id, dkt: deviceJkt };
    let sealed: Sealed;
    if ('sealed_card' in body) {
      if (mode !== 'pass_through') throw new KessaiError('validation_failed', `${issuer.route.id} re-seals credentials: send the card data, not a sealed card`);
      sealed = passThroughCard(issuer, body.sealed_card, { credentialId: body.credential_id, deviceJkt });
    } else {
      if (mode !== 'reseal') throw new KessaiError('validation_failed', `${issuer.route.id} takes credentials sealed for it by the terminal (pass-through): send sealed_card`);
      sealed = await resealCard(context, issuer, body, header);
    }
    if (await credentialIdTaken(config.db, body.credential_id)) {
      throw new KessaiError('enrollment_refused', 'the credential id is taken: choose another');
    }

    // Step 303 at the issuer: it verifies the card and the PIN and registers the credential.
    const { registration } = await http.call('POST', `${issuer.route.baseUrl}/internal/v1/enrollments`, {
      body: { credential_id: body.credential_id, device_jwk: body.device_jwk, sealed_credential: sealed.forIssuer, pin_block: body.pin_block },
      schema: issuerEnrollmentResponse,
      unavailable: 'issuer_unavailable',
    });
    await checkRegistration(context, issuer, registration, { cred: body.credential_id, dkt: deviceJkt });

    // The recovery code goes to the payer once; only its verifier is kept, beside the record.
    const recoveryCode = newRecoveryCode();
    const verifier = await recoveryVerifier(recoveryCode);
    await config.db.transaction(async (tx) => {
      const { credential_id: credentialId, device_jwk: deviceJwk } = body;
      await saveCredentialRecord(tx, { credentialId, issuerId: issuer.route.id, deviceJwk, deviceJkt });
      await saveRecoveryVerifier(tx, body.credential_id, verifier);
    });
    request.log.info({ credential: body.credential_id, issuer: issuer.route.id, mode }, 'step 305: credential issued');

    // Step 305: the sealed credential goes back to the terminal's storage.
    return reply.code(201).send({
      credential_id: body.credential_id,
      sealed_credential: sealed.forTerminal,
      issuer: { id: issuer.route.id, name: issuer.metadata.name, conversion_mode: mode },
      registration,
      auth_jwks_uri: `${config.publicBaseUrl}/.well-known/jwks.json`,
      recovery_code: recoveryCode.expose(),
    });
  });
}

/** The issuer's receipt must be its signature over this credential and device key. */
async function checkRegistration(context: AuthContext, issuer: Issuer, jws: string, expected: { cred: string; dkt: string }): Promise<void> {
  const keys = await context.issuers.withKid(issuer, readHeader(jws, 'issuer_refused').kid);
  const { value } = await verifyJson(jws, (kid) => keys.keys.byKid(kid)?.publicKey, typ.registration, 'issuer_refused');
  const receipt = registrationPayload.safeParse(value);
  if (!receipt.success || receipt.data.iss !== issuer.route.id || receipt.data.cred !== expected.cred || receipt.data.dkt !== expected.dkt) throw new KessaiError('issuer_refused', 'the registration receipt names another credential');
}
