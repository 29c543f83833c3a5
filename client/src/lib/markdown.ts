/**
 * The markdown of messages, parsed to a tree that a component renders as elements (never
 * HTML): fenced code blocks, `> ` quotes, `- ` and `1. ` lists, paragraphs; inline `code`,
 * **bold**, *italics* / _italics_, [links](https://...) and bare http(s) links, @mentions
 * and :emoji: shortcodes. Only http, https and mailto links become links; anything else stays
 * text. No HTML is recognised: `<b>` is text.
 *
 * Linear in the input: every search for a closing marker is cached so no stretch of text is
 * scanned twice, quotes and emphasis nest at most MAX_*_DEPTH deep (deeper markers stay
 * text), and unclosed markers are text.
 */

import { replaceShortcodes } from '@/lib/emoji'
import { linkify, safeHref } from '@/lib/linkify'
import { splitMentions } from '@/lib/mentions'

export type Inline =
  | { type: 'text'; text: string }
  | { type: 'code'; text: string }
  | { type: 'strong'; children: Inline[] }
  | { type: 'em'; children: Inline[] }
  | { type: 'link'; href: string; children: Inline[] }
  | { type: 'mention'; text: string; name: string }

export type Block =
  | { type: 'paragraph'; children: Inline[] }
  | { type: 'code'; lang: string; text: string }
  | { type: 'quote'; children: Block[] }
  | { type: 'list'; ordered: boolean; start: number; items: Inline[][] }

export const MAX_QUOTE_DEPTH = 6
export const MAX_EMPHASIS_DEPTH = 8
const MAX_URL_LENGTH = 2048

const FENCE_OPEN = /^ {0,3}```\s*([A-Za-z0-9_+.#-]*)\s*$/
const FENCE_CLOSE = /^ {0,3}```\s*$/
const QUOTE = /^ {0,3}> ?/
const BULLET = /^ {0,3}[-*+]\s+(.*)$/
const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/
const CONTINUATION = /^\s+\S/
const BLANK = /^\s*$/

/** Parses a message body into blocks. */
export function parseMarkdown(source: string): Block[] {
  return parseBlocks(source.replace(/\r\n?/g, '\n').split('\n'), 0)
}

function parseBlocks(lines: readonly string[], depth: number): Block[] {
  const blocks: Block[] = []
  let paragraph: string[] = []
  const flush = () => {
    if (paragraph.length === 0) return
    blocks.push({ type: 'paragraph', children: parseInline(paragraph.join('\n')) })
    paragraph = []
  }
  let index = 0
  while (index < lines.length) {
    const line = lines[index]!
    const oneLine = oneLineFence(line)
    if (oneLine !== null) {
      flush()
      blocks.push({ type: 'code', lang: '', text: oneLine })
      index += 1
      continue
    }
    const fence = FENCE_OPEN.exec(line)
    if (fence !== null) {
      flush()
      const body: string[] = []
      index += 1
      while (index < lines.length && !FENCE_CLOSE.test(lines[index]!)) body.push(lines[index++]!)
      index += 1 // the closing fence (an unclosed block runs to the end)
      blocks.push({ type: 'code', lang: fence[1]!, text: body.join('\n') })
      continue
    }
    if (depth < MAX_QUOTE_DEPTH && QUOTE.test(line)) {
      flush()
      const inner: string[] = []
      while (index < lines.length && QUOTE.test(lines[index]!)) {
        inner.push(lines[index++]!.replace(QUOTE, ''))
      }
      blocks.push({ type: 'quote', children: parseBlocks(inner, depth + 1) })
      continue
    }
    const ordered = ORDERED.exec(line)
    if (ordered !== null || BULLET.test(line)) {
      flush()
      index = parseList(lines, index, ordered !== null, blocks)
      continue
    }
    if (BLANK.test(line)) flush()
    else paragraph.push(line)
    index += 1
  }
  flush()
  return blocks
}

/** ```code``` on one line: its code, or null. (No regex: it would backtrack on long lines.) */
function oneLineFence(line: string): string | null {
  const trimmed = line.trim()
  if (trimmed.length <= 6 || !trimmed.startsWith('```') || !trimmed.endsWith('```')) return null
  const code = trimmed.slice(3, -3)
  return code.trim() === '' || code.includes('```') ? null : code
}

/** A list from `lines[start]` on: its items, each with its indented continuation lines. */
function parseList(lines: readonly string[], start: number, ordered: boolean, blocks: Block[]): number {
  const pattern = ordered ? ORDERED : BULLET
  const items: string[][] = []
  let index = start
  let first = 1
  while (index < lines.length) {
    const line = lines[index]!
    const match = pattern.exec(line)
    if (match !== null) {
      if (items.length === 0 && ordered) first = Number(match[1])
      items.push([ordered ? match[2]! : match[1]!])
    } else if (items.length > 0 && CONTINUATION.test(line)) {
      items.at(-1)!.push(line.trim())
    } else {
      break
    }
    index += 1
  }
  blocks.push({
    type: 'list',
    ordered,
    start: first,
    items: items.map((item) => parseInline(item.join('\n'))),
  })
  return index
}

/** A piece of inline text before emphasis: text to scan for `*`/`_`, or a finished node. */
type Piece = { text: string } | { node: Inline }

const PUNCTUATION = /[!-/:-@[-`{-~]/

/**
 * Finds the next occurrence of a character at or after a position, remembering the answer
 * so that a run of openers with no closer does not scan the rest of the text each time.
 */
function finder(text: string, char: string) {
  let at: number | null = null // not searched yet
  return (from: number): number => {
    // -1: none after an earlier (so smaller) `from`, so none after this one either.
    if (at !== null && (at === -1 || at >= from)) return at
    at = text.indexOf(char, from)
    return at
  }
}

/** Code spans, escapes and links (markdown and bare) first: emphasis never looks inside them. */
function atoms(text: string, links: boolean): Piece[] {
  const pieces: Piece[] = []
  let plain = ''
  const pushPlain = () => {
    if (plain === '') return
    if (links) {
      for (const segment of linkify(plain)) {
        if (segment.kind === 'link') {
          pieces.push({ node: { type: 'link', href: segment.href, children: [{ type: 'text', text: segment.text }] } })
        } else pieces.push({ text: segment.text })
      }
    } else pieces.push({ text: plain })
    plain = ''
  }
  const nextBacktick = finder(text, '`')
  const nextBracket = finder(text, ']')
  const nextParen = finder(text, ')')
  let index = 0
  while (index < text.length) {
    const char = text[index]!
    if (char === '\\' && index + 1 < text.length && PUNCTUATION.test(text[index + 1]!)) {
      pushPlain()
      pieces.push({ node: { type: 'text', text: text[index + 1]! } })
      index += 2
      continue
    }
    if (char === '`') {
      const close = nextBacktick(index + 1)
      if (close > index + 1) {
        pushPlain()
        pieces.push({ node: { type: 'code', text: text.slice(index + 1, close) } })
        index = close + 1
        continue
      }
    }
    if (char === '[' && links) {
      const link = markdownLink(text, index, nextBracket, nextParen)
      if (link !== null) {
        pushPlain()
        pieces.push({ node: link.node })
        index = link.end
        continue
      }
    }
    plain += char
    index += 1
  }
  pushPlain()
  return pieces
}

/** `[label](url)` at `start`, if its URL is an allowed one; the label holds no link. */
function markdownLink(
  text: string,
  start: number,
  nextBracket: (from: number) => number,
  nextParen: (from: number) => number,
): { node: Inline; end: number } | null {
  const close = nextBracket(start + 1)
  if (close <= start + 1 || text[close + 1] !== '(') return null
  const paren = nextParen(close + 2)
  if (paren < 0) return null
  const url = text.slice(close + 2, paren).trim()
  if (url === '' || url.length > MAX_URL_LENGTH || /\s/.test(url)) return null
  const href = safeHref(url, true)
  if (href === null) return null
  const children = emphasis(atoms(text.slice(start + 1, close), false))
  return { node: { type: 'link', href, children }, end: paren + 1 }
}

interface Opener {
  marker: '*' | '**' | '_'
  /** Where its marker text sits in `out`. */
  at: number
}

const depthOf = new WeakMap<Inline, number>()
const nodeDepth = (node: Inline) => depthOf.get(node) ?? 0

const isSpace = (char: string | undefined) => char === undefined || /\s/.test(char)
const isWord = (char: string | undefined) => char !== undefined && /[\p{L}\p{N}]/u.test(char)

/**
 * **bold**, *italics* and _italics_ over the pieces: a stack of openers; a closer pairs
 * with the nearest opener of its marker, and the openers opened after that one stay text
 * (markers do not cross). Each opener is pushed and popped once.
 */
function emphasis(pieces: readonly Piece[]): Inline[] {
  const out: Inline[] = []
  const stack: Opener[] = []
  const open = { '*': 0, '**': 0, _: 0 }

  const close = (marker: Opener['marker']): boolean => {
    if (open[marker] === 0) return false
    let opener = stack.pop()!
    open[opener.marker] -= 1
    while (opener.marker !== marker) {
      opener = stack.pop()!
      open[opener.marker] -= 1
    }
    const children = out.splice(opener.at + 1)
    if (children.length === 0) {
      out.push({ type: 'text', text: marker })
      return true
    }
    const depth = 1 + children.reduce((deepest, child) => Math.max(deepest, nodeDepth(child)), 0)
    if (depth > MAX_EMPHASIS_DEPTH) {
      out.push(...children, { type: 'text', text: marker })
      return true
    }
    const node: Inline = { type: marker === '**' ? 'strong' : 'em', children }
    depthOf.set(node, depth)
    out[opener.at] = node
    return true
  }

  // Around a piece: the neighbouring character (a node counts as a letter: `**`code`**`).
  const edge = (piece: Piece | undefined, last: boolean) =>
    piece === undefined ? undefined : 'node' in piece ? 'a' : piece.text[last ? piece.text.length - 1 : 0]
  for (const [position, piece] of pieces.entries()) {
    if ('node' in piece) {
      out.push(piece.node)
      continue
    }
    const text = piece.text
    const previous = edge(pieces[position - 1], true)
    const next = edge(pieces[position + 1], false)
    let index = 0
    let plain = ''
    while (index < text.length) {
      const char = text[index]!
      if (char !== '*' && char !== '_') {
        plain += char
        index += 1
        continue
      }
      let end = index
      while (text[end] === char) end += 1
      const run = end - index
      const before = index === 0 ? previous : text[index - 1]
      const after = end === text.length ? next : text[end]
      let canOpen = !isSpace(after)
      let canClose = !isSpace(before)
      if (char === '_') {
        canOpen &&= !isWord(before)
        canClose &&= !isWord(after)
      }
      const markers: Opener['marker'][] =
        char === '_' ? (run === 1 ? ['_'] : []) : run === 1 ? ['*'] : run === 2 ? ['**'] : run === 3 ? ['**', '*'] : []
      if (markers.length === 0 || (!canOpen && !canClose)) {
        plain += text.slice(index, end)
        index = end
        continue
      }
      if (plain !== '') out.push({ type: 'text', text: plain })
      plain = ''
      // A closer run closes the innermost first (`***` ends `*` then `**`).
      const asCloser = canClose ? [...markers].reverse() : []
      const closed = asCloser.filter((marker) => close(marker))
      const rest = markers.filter((marker) => !closed.includes(marker))
      for (const marker of rest) {
        if (canOpen) {
          stack.push({ marker, at: out.length })
          open[marker] += 1
        }
        out.push({ type: 'text', text: marker })
      }
      index = end
    }
    if (plain !== '') out.push({ type: 'text', text: plain })
  }
  return out
}

/** Mentions and emoji shortcodes in text leaves (not in code, not in link targets), and
 * neighbouring text nodes joined. */
function finish(nodes: readonly Inline[]): Inline[] {
  const result: Inline[] = []
  let text = ''
  const flushText = () => {
    if (text === '') return
    for (const segment of splitMentions(replaceShortcodes(text))) {
      if (segment.kind === 'mention') result.push({ type: 'mention', text: segment.text, name: segment.name })
      else result.push({ type: 'text', text: segment.text })
    }
    text = ''
  }
  for (const node of nodes) {
    if (node.type === 'text') {
      text += node.text
      continue
    }
    flushText()
    if (node.type === 'strong' || node.type === 'em') result.push({ ...node, children: finish(node.children) })
    else if (node.type === 'link') result.push({ ...node, children: joinText(node.children) })
    else result.push(node)
  }
  flushText()
  return result
}

/** A link's label: its text as written (no mention or shortcode inside a link). */
function joinText(nodes: readonly Inline[]): Inline[] {
  const result: Inline[] = []
  for (const node of nodes) {
    const last = result.at(-1)
    if (node.type === 'text' && last?.type === 'text') result[result.length - 1] = { type: 'text', text: last.text + node.text }
    else if (node.type === 'strong' || node.type === 'em') result.push({ ...node, children: joinText(node.children) })
    else result.push(node)
  }
  return result
}

/** Parses one paragraph (or list item) of inline markdown. */
export function parseInline(text: string): Inline[] {
  return finish(emphasis(atoms(text, true)))
}

/** A message's text without its markup, on one line: what a reply's quote shows. */
export function markdownToText(source: string): string {
  return plainText(parseMarkdown(source)).replace(/\s+/g, ' ').trim()
}

/** The plain text of a tree (what a screen reader's summary or a notification shows). */
export function plainText(blocks: readonly Block[]): string {
  const inline = (nodes: readonly Inline[]): string =>
    nodes.map((node) => ('children' in node ? inline(node.children) : node.text)).join('')
  return blocks
    .map((block) => {
      switch (block.type) {
        case 'paragraph':
          return inline(block.children)
        case 'code':
          return block.text
        case 'quote':
          return plainText(block.children)
        case 'list':
          return block.items.map(inline).join('\n')
      }
    })
    .join('\n')
}
