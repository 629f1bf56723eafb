/** The package's version and the User-Agent every HTTP call of the bridge sends. */
import { readFileSync } from 'node:fs';

/** The package version, read once from package.json next to dist/. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
export const USER_AGENT = `langfuse-bridge/${VERSION}`;
