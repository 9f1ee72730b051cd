/**
 * Every error the sidecar answers or exits with. Callers branch on `code`, never on message text.
 * The message is the short plain-text reason a client may see: it never carries a token or
 * internal error text (that goes in `cause`, for the logs).
 */
export abstract class SidecarError extends Error {
  abstract readonly code: string
  /** HTTP status the sidecar answers with when this error ends a request. */
  abstract readonly statusCode: number

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}

/** Invalid configuration: the process exits 2 with this message, which names the variable. */
export class ConfigError extends SidecarError {
  readonly code = 'ERR_CONFIG' as const
  readonly statusCode = 500
}

/** A listener cannot bind its address (in use, not on this host, privileged port): the process exits 1 with this message. */
export class ListenError extends SidecarError {
  readonly code = 'ERR_LISTEN' as const
  readonly statusCode = 500
}

/** No valid token is held for the destination: never forward without one. */
export class TokenUnavailableError extends SidecarError {
  readonly code = 'ERR_TOKEN_UNAVAILABLE' as const
  readonly statusCode = 503
}

export class UpstreamUnreachableError extends SidecarError {
  readonly code = 'ERR_UPSTREAM_UNREACHABLE' as const
  readonly statusCode = 502
}

export class UpstreamTimeoutError extends SidecarError {
  readonly code = 'ERR_UPSTREAM_TIMEOUT' as const
  readonly statusCode = 504
}

/** A request the sidecar refuses to forward as sent. */
export class BadRequestError extends SidecarError {
  readonly code = 'ERR_BAD_REQUEST' as const
  readonly statusCode = 400
}

/** The bearer token is missing, malformed, expired, wrongly signed, or for another issuer/audience. */
export class TokenInvalidError extends SidecarError {
  readonly code = 'ERR_TOKEN_INVALID' as const
  readonly statusCode = 401
  /** RFC 6750 error code; absent when no token was presented at all. */
  readonly bearerError?: 'invalid_request' | 'invalid_token'

  constructor(message: string, options?: { cause?: unknown; bearerError?: 'invalid_request' | 'invalid_token' }) {
    super(message, options)
    this.bearerError = options?.bearerError
  }
}

/** A valid token whose subject is not in ALLOWED_SUBJECTS. */
export class SubjectNotAllowedError extends SidecarError {
  readonly code = 'ERR_SUBJECT_NOT_ALLOWED' as const
  readonly statusCode = 403
}

/** The issuer's discovery document or keys cannot be had, so no token can be checked. */
export class IssuerUnavailableError extends SidecarError {
  readonly code = 'ERR_ISSUER_UNAVAILABLE' as const
  readonly statusCode = 503
}

/** A token source read something that is not a usable JWT (empty, half-written, not three parts, no `exp`). */
export class TokenMalformedError extends SidecarError {
  readonly code = 'ERR_TOKEN_MALFORMED' as const
  readonly statusCode = 503
}

/** The only token at hand has expired: it is never sent. */
export class TokenExpiredError extends SidecarError {
  readonly code = 'ERR_TOKEN_EXPIRED' as const
  readonly statusCode = 503
}

/** A body sent to the injector that is not an `admission.k8s.io/v1` AdmissionReview with a request and its `uid`. */
export class AdmissionReviewInvalidError extends SidecarError {
  readonly code = 'ERR_ADMISSION_REVIEW_INVALID' as const
  readonly statusCode = 400
}

/** A request body over the size the server accepts. */
export class BodyTooLargeError extends SidecarError {
  readonly code = 'ERR_BODY_TOO_LARGE' as const
  readonly statusCode = 413
}

/**
 * An opted-in pod whose `bearer-sidecar.io/*` annotations cannot make a working sidecar: the
 * injector answers `allowed: false` with this message, which names the annotation, and the API
 * server refuses the pod rather than start it broken.
 */
export class InjectionRefusedError extends SidecarError {
  readonly code = 'ERR_INJECTION_REFUSED' as const
  readonly statusCode = 400
  constructor(
    readonly annotation: string,
    reason: string,
  ) {
    super(`${annotation}: ${reason}`)
  }
}

/** A fault in the sidecar itself (a bug): logged with its cause, answered 500, never disguised as an upstream failure. */
export class InternalError extends SidecarError {
  readonly code = 'ERR_INTERNAL' as const
  readonly statusCode = 500
}
