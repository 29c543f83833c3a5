/**
 * Splits a message body into text and link segments. Only http and https URLs become
 * links; everything else stays text. Components render segments as text nodes and <a>
 * elements, never as HTML.
 */

export type Segment = { kind: 'text'; text: string } | { kind: 'link'; text: string; href: string }

const URL_PATTERN = /https?:\/\/[^\s<>"]+/gi
// (`*` and `_` too: a link in **bold** or _italics_ ends before the closing marker.)
const TRAILING_PUNCTUATION = new Set('.,;:!?\'")]}>*_')

function trimTrailing(candidate: string): string {
  // A loop from the end, not a regex ending in `+$`: that one backtracks quadratically.
  let end = candidate.length
  while (end > 0 && TRAILING_PUNCTUATION.has(candidate[end - 1]!)) end -= 1
  let url = candidate.slice(0, end)
  // Keep a closing parenthesis that balances one inside the URL (wiki links).
  const rest = candidate.slice(url.length)
  if (rest.startsWith(')') && url.split('(').length > url.split(')').length) {
    url += ')'
  }
  return url
}

/** The URL if it is an http(s) one (and, with `mailto`, a mailto: one); null for any other
 * scheme (javascript:, data:...) or no URL at all. */
export function safeHref(text: string, mailto = false): string | null {
  try {
    const url = new URL(text)
    const allowed = url.protocol === 'http:' || url.protocol === 'https:' || (mailto && url.protocol === 'mailto:')
    return allowed ? url.href : null
  } catch {
    return null
  }
}

export function linkify(body: string): Segment[] {
  const segments: Segment[] = []
  let cursor = 0
  const pushText = (text: string) => {
    if (!text) return
    const last = segments.at(-1)
    if (last?.kind === 'text') last.text += text
    else segments.push({ kind: 'text', text })
  }
  for (const match of body.matchAll(URL_PATTERN)) {
    const start = match.index
    const text = trimTrailing(match[0])
    const href = safeHref(text)
    pushText(body.slice(cursor, start))
    if (href) segments.push({ kind: 'link', text, href })
    else pushText(text)
    cursor = start + text.length
  }
  pushText(body.slice(cursor))
  return segments
}
