/**
 * Splits a message body into text and link segments. Only http and https URLs become
 * links; everything else stays text. Components render segments as text nodes and <a>
 * elements, never as HTML.
 */

export type Segment = { kind: 'text'; text: string } | { kind: 'link'; text: string; href: string }

const URL_PATTERN = /https?:\/\/[^\s<>"]+/gi
const TRAILING_PUNCTUATION = /[.,;:!?'")\]}>]+$/

function trimTrailing(candidate: string): string {
  let url = candidate.replace(TRAILING_PUNCTUATION, '')
  // Keep a closing parenthesis that balances one inside the URL (wiki links).
  const rest = candidate.slice(url.length)
  if (rest.startsWith(')') && url.split('(').length > url.split(')').length) {
    url += ')'
  }
  return url
}

function safeHref(text: string): string | null {
  try {
    const url = new URL(text)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null
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
