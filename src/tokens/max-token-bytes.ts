/**
 * The largest bearer token the project handles, in bytes, on both sides: a token source refuses a
 * larger file or answer, and the verifier refuses a larger `Authorization` credential. Kubernetes
 * and Google tokens are about 1 KiB; 8 KiB leaves room for rich claims and still fits, with the
 * other headers, in Node's 16 KiB header limit.
 */
export const maxTokenBytes = 8 * 1024
