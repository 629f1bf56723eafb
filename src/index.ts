/** The package's public API, for TypeScript users and receivers. */
export * from './events/types.js';
export { defineHandlers } from './handlers.js';
export type * from './handlers.js';
export { verifyLangfuseSignature, createSigner } from './sinks/signing.js';
