// Prints the gzipped size of the JavaScript a first visit loads (the entry script and the
// modules it preloads) and fails when it passes the budget.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const BUDGET_KIB = 150
const dist = new URL('../../src/chatroom/web/client_dist/', import.meta.url).pathname
const html = readFileSync(join(dist, 'index.html'), 'utf8')

const scripts = [
  ...html.matchAll(/<script[^>]+type="module"[^>]+src="([^"]+)"/g),
  ...html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="([^"]+)"/g),
].map((match) => match[1])

let total = 0
for (const src of new Set(scripts)) {
  const size = gzipSync(readFileSync(join(dist, src))).length
  total += size
  console.log(`  ${src}  ${(size / 1024).toFixed(1)} KiB gzipped`)
}
const kib = total / 1024
console.log(`initial JS: ${kib.toFixed(1)} KiB gzipped (budget ${BUDGET_KIB} KiB)`)
if (kib > BUDGET_KIB) {
  console.error(`initial JS is over the budget of ${BUDGET_KIB} KiB gzipped`)
  process.exit(1)
}
