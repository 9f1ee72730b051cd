/** The tools every suite shares (after undici's `benchmarks/_util`). */
export * from './args'
export * from './fixed-rate'
export * from './process'
export * from './report'
export * from './suite'
export * from './wrk'
