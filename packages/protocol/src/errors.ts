/**
 * The closed set of error codes Kessai servers answer with, as RFC 9457 problem details.
 * docs/errors.md lists every code; a test keeps the two in step, and each code has a test that
 * produces it.
 */
export const errorCatalog = {
  validation_failed: { status: 400, title: 'The request does not match the schema' },
  body_too_large: { status: 413, title: 'The request body is larger than bodyBytesMax' },
  request_timeout: { status: 408, title: 'The request did not arrive within requestTimeoutMs' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  unauthenticated: { status: 401, title: 'Missing or invalid credentials' },
  client_certificate_required: { status: 401, title: 'This endpoint requires a client certificate from the Kessai CA' },
  idempotency_key_missing: { status: 400, title: 'Idempotency-Key header is required on this POST' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key was used with a different request' },
  idempotency_request_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  card_invalid: { status: 422, title: 'The card number is not valid' },
  card_expired: { status: 422, title: 'The card has expired' },
  issuer_unknown: { status: 422, title: 'No settlement server serves this card range' },
  account_not_found: { status: 422, title: 'The issuer has no account for this card' },
  amount_mismatch: { status: 422, title: 'The amount is not the sum of the line items' },
  credential_not_found: { status: 404, title: 'No such credential' },
  credential_revoked: { status: 403, title: 'The credential has been revoked' },
  credential_invalid: { status: 422, title: 'The sealed credential cannot be opened or is not bound to this credential' },
  credential_device_mismatch: { status: 422, title: 'The credential belongs to another device key' },
  credential_unknown: { status: 403, title: 'The issuer has not registered this credential for this device key' },
  credential_limit_reached: { status: 409, title: 'The card already has credentialsPerCardMax active credentials; revoke one first' },
  enrollment_refused: { status: 422, title: 'The issuer refused the enrollment: card number, name, expiry or PIN do not match an active card' },
  merchant_unknown: { status: 422, title: 'The issuer has not onboarded this merchant' },
  directory_invalid: { status: 502, title: 'The issuer directory is not signed by the pinned directory key, or does not list this issuer' },
  payment_request_not_found: { status: 404, title: 'No such payment request' },
  payment_request_expired: { status: 409, title: 'The payment request has expired' },
  payment_request_not_pending: { status: 409, title: 'The payment request is no longer pending' },
  approval_invalid: { status: 422, title: 'The approval is not a valid signature by the device key' },
  approval_mismatch: { status: 422, title: 'The approval was signed for another request, amount, currency, merchant or items' },
  approval_replayed: { status: 409, title: 'This approval nonce was already used' },
  approval_stale: { status: 422, title: 'The approval is too old or from the future' },
  pin_invalid: { status: 422, title: 'The encrypted PIN cannot be opened or is bound to another request' },
  authorization_not_found: { status: 404, title: 'No such authorization' },
  capture_exceeds_authorization: { status: 422, title: 'The capture amount exceeds the authorized amount' },
  authorization_not_capturable: { status: 409, title: 'The authorization is not in a state that allows this' },
  ledger_busy: { status: 503, title: 'The settlement server has too many ledger requests queued; retry later' },
  refund_exceeds_captured: { status: 422, title: 'The refunds would exceed the captured amount' },
  authorization_not_refundable: { status: 409, title: 'Only a captured payment can be refunded' },
  issuer_unavailable: { status: 502, title: 'The settlement server could not be reached' },
  broker_unavailable: { status: 502, title: 'The authentication server could not be reached' },
  issuer_refused: { status: 502, title: 'The settlement server refused the request' },
  deadline_exceeded: { status: 503, title: "The caller's deadline passed before the work began; nothing was done" },
  settlement_day_not_over: { status: 409, title: 'The business day has not ended yet; it cannot be closed' },
  settlement_batch_not_found: { status: 404, title: 'No such settlement batch' },
  stream_limit_reached: { status: 429, title: 'Too many open event streams for this credential or server' },
  rate_limited: { status: 429, title: 'Too many requests; retry after the number of seconds in Retry-After' },
  recovery_code_invalid: { status: 403, title: 'The recovery code does not match this credential' },
  recovery_locked: { status: 429, title: 'Too many wrong recovery codes for this credential; try again later' },
  key_retired: { status: 422, title: 'The sealed credential or PIN block is under a retired key' },
  key_not_found: { status: 404, title: 'No such key' },
  webhook_event_not_found: { status: 404, title: 'No such webhook event' },
  starting_after_not_found: { status: 404, title: 'The starting_after id names none of your objects of this list' },
  key_in_use: { status: 409, title: 'The current key cannot be retired; rotate first' },
  overloaded: { status: 503, title: 'The server has too many requests of this kind in progress; retry after the number of seconds in Retry-After' },
  database_unavailable: { status: 503, title: 'The server cannot reach its database; retry after the number of seconds in Retry-After' },
  migration_changed: { status: 503, title: "An applied migration's file has changed since it was applied" },
  migration_missing: { status: 503, title: "An applied migration's file is missing" },
  migrations_pending: { status: 503, title: 'The database has migrations not yet applied, and this server only verifies them' },
  backup_invalid: { status: 422, title: 'The file is not a Kessai key backup, or it is damaged' },
  backup_passphrase_wrong: { status: 422, title: 'The passphrase does not open this key backup' },
  keys_exist: { status: 409, title: 'The keys folder already holds keys' },
  account_row_invalid: { status: 422, title: 'A row of the account import is invalid; it is reported by its row number and nothing of it was imported' },
  account_conflict: { status: 409, title: 'The card exists at the bank with other data; nothing was changed' },
  import_batch_too_large: { status: 413, title: 'More rows than accountsImportRowsMax in one import call' },
  merchant_name_taken: { status: 409, title: 'Another merchant has this name (case-insensitively): payers could not tell them apart' },
  api_key_limit_reached: { status: 409, title: 'The merchant already has merchantApiKeysMax working API keys; retire the previous ones first' },
  internal_error: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalog;
export const errorCodes = Object.keys(errorCatalog) as ErrorCode[];

/** Why the settlement server declined an authorization; travels inside the signed decision. */
export const declineCatalog = {
  pin_incorrect: 'The PIN is wrong',
  pin_locked: 'Too many wrong PINs: the card is locked until the issuer unlocks it',
  insufficient_funds: 'The available balance does not cover the amount',
  card_blocked: 'The issuer has blocked the card',
  card_expired: 'The card has expired',
  currency_mismatch: "The card's account is in another currency",
  livemode_mismatch: 'A test card in live mode, or a live card in test mode',
  credential_locked: 'Too many wrong PINs through this credential: it is locked until the issuer unlocks it',
} as const;

export type DeclineCode = keyof typeof declineCatalog;
export const declineCodes = Object.keys(declineCatalog) as DeclineCode[];

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  errors?: Array<{ path: string; message: string }>;
  /** The answer's Request-Id (also its `Request-Id` header): what an operator greps the logs for. */
  request_id?: string;
}

/**
 * An expected failure caused by the caller's input or by a peer. `detail` must never contain
 * personal data: it is sent to the caller and logged.
 */
export class KessaiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: Problem['errors'];
  /** rate_limited, database_unavailable, overloaded: seconds until the caller may try again, sent as Retry-After. */
  retryAfterSeconds?: number;
  /** Set by a client when its call never reached the peer (the connection was refused): the peer did nothing. */
  notSent?: boolean;
  /** Set by a client when this is the peer's own answer (its problem+json with a documented code), not a failure to get one. */
  fromPeer?: boolean;
  /** Set by a client from the peer's answer (`request_id`, else the `Request-Id` header): quote it to the peer's operator. */
  requestId?: string;
  /**
   * Set by a client when the peer did answer, but not with a documented problem: the HTTP status of a body it cannot
   * read, of an error code it does not know, or of a 500.
   */
  answeredStatus?: number;
  constructor(code: ErrorCode, detail?: string, errors?: Problem['errors']) {
    super(detail ?? errorCatalog[code].title);
    this.name = 'KessaiError';
    this.code = code;
    this.status = errorCatalog[code].status;
    this.errors = errors;
  }

  /** The problem document; `requestId` (the answer's Request-Id) goes in as `request_id`. */
  toProblem(requestId?: string): Problem {
    const problem: Problem = {
      type: `urn:kessai:error:${this.code}`,
      title: errorCatalog[this.code].title,
      status: this.status,
      code: this.code,
    };
    if (this.message !== problem.title) problem.detail = this.message;
    if (this.errors) problem.errors = this.errors;
    if (requestId !== undefined) problem.request_id = requestId;
    return problem;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCatalog, value);
}
