// Loaded with `node --require` into benchmarked children: reports the process's peak RSS on exit.
process.on('exit', () => {
  try {
    require('node:fs').writeSync(2, `\nBENCH_MAXRSS_KB ${process.resourceUsage().maxRSS}\n`);
  } catch {
    /* stderr closed: nothing to report */
  }
});
