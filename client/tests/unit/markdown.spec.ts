import { describe, expect, it } from 'vitest'

import { type Block, type Inline, MAX_EMPHASIS_DEPTH, MAX_QUOTE_DEPTH, markdownToText, parseInline, parseMarkdown, plainText } from '@/lib/markdown'

const text = (value: string): Inline => ({ type: 'text', text: value })

/** Every link target anywhere in a tree. */
function hrefs(blocks: readonly Block[]): string[] {
  const inline = (nodes: readonly Inline[]): string[] =>
    nodes.flatMap((node) => [
      ...(node.type === 'link' ? [node.href] : []),
      ...('children' in node ? inline(node.children) : []),
    ])
  return blocks.flatMap((block) => {
    if (block.type === 'paragraph') return inline(block.children)
    if (block.type === 'quote') return hrefs(block.children)
    if (block.type === 'list') return block.items.flatMap(inline)
    return []
  })
}

function depth(nodes: readonly Inline[]): number {
  return nodes.reduce((deepest, node) => Math.max(deepest, 'children' in node ? 1 + depth(node.children) : 0), 0)
}

describe('markdown inline', () => {
  it('parses bold, italics, inline code', () => {
    expect(parseInline('a **b** *c* _d_ `e*f*`')).toEqual([
      text('a '),
      { type: 'strong', children: [text('b')] },
      text(' '),
      { type: 'em', children: [text('c')] },
      text(' '),
      { type: 'em', children: [text('d')] },
      text(' '),
      { type: 'code', text: 'e*f*' },
    ])
  })

  it('nests emphasis and closes *** innermost first', () => {
    expect(parseInline('**bold *both***')).toEqual([
      { type: 'strong', children: [text('bold '), { type: 'em', children: [text('both')] }] },
    ])
    expect(parseInline('***x***')).toEqual([
      { type: 'strong', children: [{ type: 'em', children: [text('x')] }] },
    ])
  })

  it('leaves unclosed and space-flanked markers as text', () => {
    expect(parseInline('**open and *half')).toEqual([text('**open and *half')])
    expect(parseInline('a * b * c')).toEqual([text('a * b * c')])
    expect(parseInline('`unclosed code')).toEqual([text('`unclosed code')])
    expect(parseInline('[label](mailto:a@example.com')).toEqual([text('[label](mailto:a@example.com')])
  })

  it('does not italicise snake_case words', () => {
    expect(parseInline('snake_case_name and _it_')).toEqual([
      text('snake_case_name and '),
      { type: 'em', children: [text('it')] },
    ])
  })

  it('keeps crossing markers apart: the inner unclosed one is text', () => {
    expect(parseInline('*a **b* c**')).toEqual([
      { type: 'em', children: [text('a **b')] },
      text(' c**'),
    ])
  })

  it('honours backslash escapes', () => {
    expect(parseInline('\\*not em\\*')).toEqual([text('*not em*')])
  })

  it('makes markdown links of http, https and mailto only', () => {
    expect(parseInline('[site](https://example.com/a_b) [mail](mailto:a@example.com)')).toEqual([
      { type: 'link', href: 'https://example.com/a_b', children: [text('site')] },
      text(' '),
      { type: 'link', href: 'mailto:a@example.com', children: [text('mail')] },
    ])
    for (const hostile of [
      '[x](javascript:alert(1))',
      '[x](JAVASCRIPT:alert(1))',
      '[x]( javascript:alert(1))',
      '[x](data:text/html;base64,PHNjcmlwdD4=)',
      '[x](vbscript:msgbox)',
      '[x](//evil.example)',
      '[x](/relative)',
      '[x](java\tscript:alert(1))',
    ]) {
      expect(hrefs(parseMarkdown(hostile)), hostile).toEqual([])
    }
  })

  it('links bare http(s) URLs without touching their underscores or asterisks', () => {
    expect(parseInline('see https://example.com/a_b_c*d* now')).toEqual([
      text('see '),
      { type: 'link', href: 'https://example.com/a_b_c*d', children: [text('https://example.com/a_b_c*d')] },
      text('* now'),
    ])
    expect(parseInline('**https://example.com**')).toEqual([
      {
        type: 'strong',
        children: [{ type: 'link', href: 'https://example.com/', children: [text('https://example.com')] }],
      },
    ])
  })

  it('highlights mentions outside code and links, and turns shortcodes into emoji', () => {
    expect(parseInline('hi @alice :smile: `@bob :smile:`')).toEqual([
      text('hi '),
      { type: 'mention', text: '@alice', name: 'alice' },
      text(' 😄 '),
      { type: 'code', text: '@bob :smile:' },
    ])
    expect(parseInline('[@carol](https://example.com/@carol)')).toEqual([
      { type: 'link', href: 'https://example.com/@carol', children: [text('@carol')] },
    ])
  })

  it('treats HTML as text', () => {
    expect(parseInline('<img src=x onerror=alert(1)>')).toEqual([text('<img src=x onerror=alert(1)>')])
  })
})

describe('markdown blocks', () => {
  it('parses code fences, keeping their text as written', () => {
    expect(parseMarkdown('before\n```ts\nconst a = **1**\n  <b>\n```\nafter')).toEqual([
      { type: 'paragraph', children: [text('before')] },
      { type: 'code', lang: 'ts', text: 'const a = **1**\n  <b>' },
      { type: 'paragraph', children: [text('after')] },
    ])
    expect(parseMarkdown('```one line```')).toEqual([{ type: 'code', lang: '', text: 'one line' }])
  })

  it('runs an unclosed fence to the end', () => {
    expect(parseMarkdown('```\ncode\nmore')).toEqual([{ type: 'code', lang: '', text: 'code\nmore' }])
  })

  it('parses quotes, nested, and lists', () => {
    expect(parseMarkdown('> quoted *it*\n>> deeper\nplain')).toEqual([
      {
        type: 'quote',
        children: [
          { type: 'paragraph', children: [text('quoted '), { type: 'em', children: [text('it')] }] },
          { type: 'quote', children: [{ type: 'paragraph', children: [text('deeper')] }] },
        ],
      },
      { type: 'paragraph', children: [text('plain')] },
    ])
    expect(parseMarkdown('Todo:\n- one\n  still one\n- **two**\n\n3. c\n4. d')).toEqual([
      { type: 'paragraph', children: [text('Todo:')] },
      {
        type: 'list',
        ordered: false,
        start: 1,
        items: [[text('one\nstill one')], [{ type: 'strong', children: [text('two')] }]],
      },
      { type: 'list', ordered: true, start: 3, items: [[text('c')], [text('d')]] },
    ])
  })

  it('keeps line breaks inside a paragraph and splits paragraphs at blank lines', () => {
    expect(parseMarkdown('a\nb\n\nc')).toEqual([
      { type: 'paragraph', children: [text('a\nb')] },
      { type: 'paragraph', children: [text('c')] },
    ])
  })

  it('caps quote nesting: deeper markers stay text', () => {
    const blocks = parseMarkdown(`${'>'.repeat(50)} deep`)
    let level = 0
    let current: Block | undefined = blocks[0]
    while (current?.type === 'quote') {
      level += 1
      current = current.children[0]
    }
    expect(level).toBe(MAX_QUOTE_DEPTH)
    expect(plainText(blocks)).toBe(`${'>'.repeat(50 - MAX_QUOTE_DEPTH)} deep`)
  })

  it('caps emphasis nesting', () => {
    const nested = `${'*a **b '.repeat(40)}x${' b** a*'.repeat(40)}`
    const inline = parseInline(nested)
    expect(depth(inline)).toBeLessThanOrEqual(MAX_EMPHASIS_DEPTH)
    expect(plainText([{ type: 'paragraph', children: inline }]).replace(/[*]/g, '')).toBe(
      nested.replace(/[*]/g, ''),
    )
  })
})

describe('markdown on hostile input', () => {
  // Shapes that make naive parsers quadratic or recurse without bound (no timing here: the
  // linear scaling is measured by hand, see the report of the markdown change).
  const shapes: Record<string, (n: number) => string> = {
    openers: (n) => '**a '.repeat(n),
    underscores: (n) => '_a '.repeat(n),
    brackets: (n) => '['.repeat(n) + ']',
    links: (n) => '[a]('.repeat(n),
    backticks: (n) => 'a`'.repeat(n).slice(0, -1) + ' ',
    quotes: (n) => '> '.repeat(n),
    list: (n) => '- a\n'.repeat(n),
    fences: (n) => '```\n'.repeat(n),
    mixed: (n) => '*_`[(**__'.repeat(n),
    url: (n) => `https://example.com/${'_'.repeat(n)}x`,
  }

  for (const [name, make] of Object.entries(shapes)) {
    it(`parses ${name} without blowing up, and to the same text`, () => {
      const source = make(20_000)
      const blocks = parseMarkdown(source)
      expect(Array.isArray(blocks)).toBe(true)
      // Nothing is lost but markers: every letter of the input is still there.
      const letters = (value: string) => value.replace(/[^a-z]/g, '').length
      expect(letters(plainText(blocks))).toBe(letters(source))
    })
  }
})

describe('markdownToText', () => {
  it('gives a quote the words without their markup, on one line', () => {
    expect(markdownToText('**ship** it _today_ with `make deploy`')).toBe('ship it today with make deploy')
    expect(markdownToText('> quoted\n- one\n- two')).toBe('quoted one two')
    expect(markdownToText('[the docs](https://example.com)')).toBe('the docs')
  })
})
