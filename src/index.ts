export type { AuthServerConfig, EgressConfig, IngressConfig, RouteConfig, VerifierConfig } from './config'
export { loadAuthServerConfig, loadEgressConfig, loadIngressConfig } from './config'
export type { EgressServer, EgressServerOptions } from './egress/server'
export { createEgressServer } from './egress/server'
export {
  BadRequestError,
  ConfigError,
  IssuerUnavailableError,
  ListenError,
  SidecarError,
  SubjectNotAllowedError,
  TokenExpiredError,
  TokenInvalidError,
  TokenMalformedError,
  TokenUnavailableError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from './errors'
export type { IngressServer, IngressServerOptions } from './ingress/server'
export { createIngressServer } from './ingress/server'
export { createLogger } from './log'
export type { Metrics } from './metrics'
export { createMetrics, registerTokenGauges } from './metrics'
export type { FileTokenSourceOptions } from './tokens/file-source'
export { createFileTokenSource } from './tokens/file-source'
export type { GoogleCredentials, GoogleTokenOrigin } from './tokens/google-credentials'
export { readGoogleCredentials } from './tokens/google-credentials'
export type { GoogleIdTokens } from './tokens/google-id-tokens'
export { createGoogleIdTokens } from './tokens/google-id-tokens'
export type { GoogleTokenSourceOptions } from './tokens/google-source'
export { createGoogleTokenSource } from './tokens/google-source'
export type { Token, TokenKeyStatus, TokenSource } from './tokens/token-source'
export type { CachedVerification, VerifiedTokenCache, VerifiedTokenCacheOptions } from './verify/cache'
export { createVerifiedTokenCache } from './verify/cache'
export { createExpressAuth } from './verify/express'
export type { Identity, KubernetesIdentity } from './verify/identity'
export type { AuthenticatedRequest, AuthOptions } from './verify/middleware'
export { authenticate, createAuthHandler, sendAuthError } from './verify/middleware'
export type { IssuerStatus } from './verify/trusted-issuer'
export type { RejectionReason, Verifier, VerifierOptions } from './verify/verifier'
export { createVerifier, verifierDefaults } from './verify/verifier'
