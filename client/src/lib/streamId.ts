/** Redis stream ids ("<ms>-<seq>"): the order of messages in a room. */

function parts(id: string): [number, number] {
  const [ms = '0', seq = '0'] = id.split('-')
  return [Number(ms), Number(seq)]
}

/** Negative if a is older than b, positive if newer, 0 if equal. */
export function compareIds(a: string, b: string): number {
  const [aMs, aSeq] = parts(a)
  const [bMs, bSeq] = parts(b)
  return aMs - bMs || aSeq - bSeq
}

/** The wall-clock time the id was given (its millisecond part). */
export function idTime(id: string): Date {
  return new Date(parts(id)[0])
}
