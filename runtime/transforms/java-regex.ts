// Java regular expressions (java.util.regex) as RegexRouter and TopicNameMatches use them, run by
// JavaScript's engine: the whole input must match (Matcher.matches()). JavaScript's engine
// backtracks without limit, so patterns that can backtrack catastrophically are refused: nested
// quantifiers such as `(a+)+`, `(a*)*` or `(\w+\s?)*`. Java-only syntax (possessive quantifiers,
// atomic groups, inline flags other than a leading `(?i)`) is refused with a message rather than
// read differently. Inputs are topic names (at most 249 characters), which bounds the work.
const MAX_PATTERN_LENGTH = 1000;

/** Whole-input RegExp of a Java pattern, or the problem with it (phrased to follow the key). */
export function compileJavaRegex(source: string): RegExp | string {
  if (source.length > MAX_PATTERN_LENGTH)
    return `is longer than ${MAX_PATTERN_LENGTH} characters; topic names are at most 249 characters: shorten it`;
  let flags = '';
  let body = source;
  const inline = /^\(\?([imsux]+)\)/.exec(body);
  if (inline) {
    if (/[^i]/.test(inline[1]!))
      return `uses the inline flags (?${inline[1]}); only a leading (?i) is supported here`;
    flags = 'i';
    body = body.slice(inline[0].length);
  }
  const unsupported = javaOnlySyntax(body);
  if (unsupported) return unsupported;
  const nested = nestedQuantifier(body);
  if (nested)
    return `has a nested quantifier (${nested}), which can backtrack catastrophically; rewrite it without a quantified group that itself contains a quantifier`;
  try {
    return new RegExp(`^(?:${body})$`, flags);
  } catch (error) {
    return `is not a valid regular expression: ${(error as Error).message}`;
  }
}

function javaOnlySyntax(body: string): string | undefined {
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\') {
      const next = body[i + 1];
      if (next === 'A' || next === 'Z' || next === 'z' || next === 'G' || next === 'Q' || next === 'E')
        return `uses \\${next}, which JavaScript does not support: the whole topic is matched anyway, drop it`;
      i++;
      continue;
    }
    if (c === '(' && body.startsWith('(?>', i))
      return 'uses an atomic group (?>...), which is not supported here';
    if (c === '(' && /^\(\?[imsux-]+[:)]/.test(body.slice(i)))
      return 'uses inline flags inside the pattern; only a leading (?i) is supported here';
    if ((c === '+' || c === '*' || c === '?' || c === '}') && body[i + 1] === '+' && body[i - 1] !== '\\')
      return 'uses a possessive quantifier (e.g. a++), which is not supported here';
  }
  return undefined;
}

/**
 * The first quantified group that contains a quantifier, as text, or undefined. Character classes
 * and escapes are skipped; `{n}` with a single count and `?` do not repeat, so they do not count.
 */
export function nestedQuantifier(body: string): string | undefined {
  const stack: Array<{ start: number; quantified: boolean }> = [];
  let i = 0;
  const repeatsAt = (j: number): number => {
    // Length of a repeating quantifier at j (+, *, {n,}, {n,m} with m > 1), or 0.
    const c = body[j];
    if (c === '+' || c === '*') return 1;
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(body.slice(j));
      if (!m) return 0;
      if (m[2] === undefined) return 0;
      if (m[3] !== '' && Number(m[3]) <= 1) return 0;
      return m[0].length;
    }
    return 0;
  };
  while (i < body.length) {
    const c = body[i]!;
    if (c === '\\') {
      i += 2;
      if (repeatsAt(i) && stack.length > 0) stack[stack.length - 1]!.quantified = true;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (body[j] === '^') j++;
      if (body[j] === ']') j++;
      while (j < body.length && body[j] !== ']') j += body[j] === '\\' ? 2 : 1;
      i = j + 1;
      if (repeatsAt(i) && stack.length > 0) stack[stack.length - 1]!.quantified = true;
      continue;
    }
    if (c === '(') {
      stack.push({ start: i, quantified: false });
      i++;
      continue;
    }
    if (c === ')') {
      const group = stack.pop();
      i++;
      const repeat = repeatsAt(i);
      if (group && repeat && group.quantified) return body.slice(group.start, i + repeat);
      // A group that contains a quantifier (or is quantified) makes its parent contain one.
      if (group && stack.length > 0 && (group.quantified || repeat))
        stack[stack.length - 1]!.quantified = true;
      continue;
    }
    i++;
    if (repeatsAt(i) && stack.length > 0) stack[stack.length - 1]!.quantified = true;
  }
  return undefined;
}

/** Java's Matcher replacement: `$n`, `${name}`, and `\x` for a literal x. */
export function javaReplacement(replacement: string): (match: RegExpExecArray) => string {
  const parts: Array<string | { group: number | string }> = [];
  let text = '';
  for (let i = 0; i < replacement.length; i++) {
    const c = replacement[i]!;
    if (c === '\\' && i + 1 < replacement.length) {
      text += replacement[++i];
    } else if (c === '$') {
      if (replacement[i + 1] === '{') {
        const end = replacement.indexOf('}', i);
        parts.push(text, { group: replacement.slice(i + 2, end === -1 ? undefined : end) });
        text = '';
        i = end === -1 ? replacement.length : end;
      } else {
        const digits = /^\d+/.exec(replacement.slice(i + 1));
        if (!digits) throw new Error(`Illegal group reference in replacement "${replacement}"`);
        parts.push(text, { group: Number(digits[0]) });
        text = '';
        i += digits[0].length;
      }
    } else text += c;
  }
  parts.push(text);
  return (match) =>
    parts
      .map((p) => {
        if (typeof p === 'string') return p;
        if (typeof p.group === 'string') return match.groups?.[p.group] ?? '';
        return match[p.group] ?? '';
      })
      .join('');
}

/** Why a replacement string is invalid, or undefined. */
export function replacementProblem(replacement: string): string | undefined {
  try {
    javaReplacement(replacement);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
