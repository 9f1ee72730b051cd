/** The verifier bench's defaults where they differ from the egress bench's: more, shorter rounds; a fixed rate high enough to read CPU per request from 10 ms ticks. */
export const verifierDefaults = { rounds: 5, duration: 3, rate: 2000 }
