// Who is asking: a JWT (HS256, JWT_SECRET) whose `role` claim, from an
// allow-list, becomes the Postgres role of the request; no token at all is
// stockroom_public, which the database lets read the public catalog only.
// Expired, forged and unsigned (alg: none) tokens, tokens without exp or
// living longer than the configured maximum, and roles outside the list (or
// disabled on this server), are refused before any SQL runs.
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { API_ROLES, type ApiRole } from '../config.ts';

export { API_ROLES, type ApiRole };

/** The longest actor the SQL API records (inventory._max_length('actor')). */
const MAX_ACTOR_LENGTH = 200;

export interface Claims { role: ApiRole; sub: string | undefined }

export const ANONYMOUS: Claims = { role: 'stockroom_public', sub: undefined };

/** What this server accepts: the token secret, the roles it serves, and the longest a token may live. */
export interface AuthPolicy {
  secret: Uint8Array | undefined;
  /** Roles the API serves; a token for another is refused, and without stockroom_public so is a request without a token. */
  roles: ReadonlySet<ApiRole>;
  /** The most seconds between a token's iat (or now, without iat) and its exp. */
  maxLifetimeSeconds: number;
}

export class AuthError extends Error {
  readonly statusCode: 401 | 403;
  readonly code: 'UNAUTHENTICATED' | 'FORBIDDEN';
  constructor(message: string, statusCode: 401 | 403) {
    super(message);
    this.statusCode = statusCode;
    this.code = statusCode === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
  }
}

/**
 * Tokens already verified, until they expire: a client sends the same token
 * with every request, and checking its HMAC each time (web crypto, async) costs
 * more than the rest of a small request's auth. Only accepted tokens are kept,
 * under the policy (secret, roles, lifetime) they were checked with; bounded,
 * emptied when full.
 */
const verified = new Map<string, { claims: Claims; expiresAtMs: number; policy: AuthPolicy }>();
const MAX_VERIFIED = 10_000;

/** Claims from an Authorization header value; no header is the anonymous public caller. */
export async function authenticate(header: string | undefined, policy: AuthPolicy): Promise<Claims> {
  const { secret, roles } = policy;
  if (header === undefined || header === '') {
    if (!roles.has(ANONYMOUS.role)) throw new AuthError('this server serves no anonymous callers: send "Authorization: Bearer <token>"', 401);
    return ANONYMOUS;
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (!bearer) throw new AuthError('the Authorization header must be "Bearer <token>"', 401);
  if (!secret) throw new AuthError('this server accepts no tokens (JWT_SECRET is not set)', 401);
  const token = bearer[1]!;
  const known = verified.get(token);
  if (known && known.policy === policy && Date.now() < known.expiresAtMs) return known.claims;
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], requiredClaims: ['exp'] }));
  } catch (error) {
    verified.delete(token);
    throw new AuthError(
      error instanceof joseErrors.JWTExpired ? 'the token has expired'
        : error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'exp' ? 'the token has no exp: every token must expire'
          : 'the token is not valid (signature, algorithm or format)', 401);
  }
  // jwtVerify checked that exp is a number in the future.
  const exp = payload.exp!;
  const issuedAt = typeof payload.iat === 'number' ? payload.iat : Date.now() / 1000;
  if (exp - issuedAt > policy.maxLifetimeSeconds) {
    throw new AuthError(`the token lives ${Math.round(exp - issuedAt)} s (iat to exp), longer than this server accepts (${policy.maxLifetimeSeconds} s): issue shorter-lived tokens`, 401);
  }
  const role = payload.role;
  if (typeof role !== 'string' || !(API_ROLES as readonly string[]).includes(role)) {
    throw new AuthError(`role ${JSON.stringify(typeof role === 'string' ? role.slice(0, 64) : role ?? null)} may not use the API; roles: ${[...roles].join(', ')}`, 403);
  }
  if (!roles.has(role as ApiRole)) {
    throw new AuthError(`role ${role} is disabled on this server (STOCKROOM_API_ROLES); roles: ${[...roles].join(', ')}`, 403);
  }
  // The subject becomes the ledger's actor, which the SQL API caps at MAX_ACTOR_LENGTH characters.
  if (typeof payload.sub === 'string' && payload.sub.length > MAX_ACTOR_LENGTH) {
    throw new AuthError(`the token's sub is ${payload.sub.length} characters long, more than ${MAX_ACTOR_LENGTH}: it names the actor of the ledger`, 401);
  }
  const claims: Claims = { role: role as ApiRole, sub: typeof payload.sub === 'string' ? payload.sub : undefined };
  // Kept for a minute at a time at most: nbf/iat rules are re-checked then.
  const expiresAtMs = Math.min(exp * 1000, Date.now() + 60_000);
  if (verified.size >= MAX_VERIFIED) verified.clear();
  verified.set(token, { claims, expiresAtMs, policy });
  return claims;
}

/** A token this API accepts: HS256, the role, an optional subject (the ledger's actor), iat and exp. */
export function signToken(secret: string, claims: { role: ApiRole; sub?: string }, lifetimeSeconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ role: claims.role }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + lifetimeSeconds);
  if (claims.sub) jwt.setSubject(claims.sub);
  return jwt.sign(new TextEncoder().encode(secret));
}
