// Writes a gzip (.gz) and a brotli (.br) copy beside every text asset of the build, at the
// highest levels (done once per build, not per request). The app node serves the smallest
// copy the browser accepts, with Content-Encoding and Vary: Accept-Encoding
// (src/chatroom/web/client.py). Prints the bytes a first visit moves, before and after.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const assets = new URL('../../src/chatroom/web/client_dist/assets/', import.meta.url).pathname
const TEXT = /\.(js|css|svg|json|map|txt)$/

let raw = 0
let gzip = 0
let brotli = 0
for (const name of readdirSync(assets)) {
  if (!TEXT.test(name)) continue
  const path = join(assets, name)
  const content = readFileSync(path)
  const gz = gzipSync(content, { level: 9 })
  const br = brotliCompressSync(content, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: content.length,
    },
  })
  // A copy that is not smaller is not worth a variant.
  if (gz.length < content.length) writeFileSync(`${path}.gz`, gz)
  if (br.length < content.length) writeFileSync(`${path}.br`, br)
  raw += content.length
  gzip += Math.min(gz.length, content.length)
  brotli += Math.min(br.length, content.length)
}
/** @param {number} bytes */
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
console.log(`assets: ${kib(raw)} raw, ${kib(gzip)} gzip, ${kib(brotli)} brotli (precompressed)`)
