// The part of java.text.SimpleDateFormat that Kafka Connect's TimestampConverter and
// TimestampRouter use, always in UTC (Connect sets the UTC time zone): letters y M d H k K h m s
// S a E D Z X z and quoted text ('...'; '' is a quote). Unsupported letters are a config problem.
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const SUPPORTED = new Set('yMdHkKhmsSaEDZXz');

type Token = { letter: string; count: number } | { text: string };

/** The tokens of a pattern, or the problem with it. */
export function tokenize(pattern: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "'") {
      if (pattern[i + 1] === "'") {
        tokens.push({ text: "'" });
        i += 2;
        continue;
      }
      const end = pattern.indexOf("'", i + 1);
      if (end === -1) return `Unterminated quote in pattern "${pattern}"`;
      tokens.push({ text: pattern.slice(i + 1, end) });
      i = end + 1;
    } else if (/[a-zA-Z]/.test(c)) {
      if (!SUPPORTED.has(c))
        return `Illegal pattern character '${c}' (supported here: ${[...SUPPORTED].join(' ')})`;
      let j = i;
      while (pattern[j] === c) j++;
      tokens.push({ letter: c, count: j - i });
      i = j;
    } else {
      tokens.push({ text: c });
      i++;
    }
  }
  return tokens;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

function offsetText(letter: string, count: number): string {
  // UTC only: Z -> +0000; X -> Z; z -> UTC.
  if (letter === 'X') return 'Z';
  if (letter === 'z') return count >= 4 ? 'Coordinated Universal Time' : 'UTC';
  return '+0000';
}

export function formatDate(ms: number, pattern: string): string {
  const tokens = tokenize(pattern);
  if (typeof tokens === 'string') throw new Error(tokens);
  const d = new Date(ms);
  return tokens
    .map((t) => {
      if ('text' in t) return t.text;
      const { letter, count } = t;
      switch (letter) {
        case 'y': {
          const y = d.getUTCFullYear();
          return count === 2 ? pad(y % 100, 2) : pad(y, count);
        }
        case 'M': {
          const m = d.getUTCMonth();
          if (count >= 4) return MONTHS[m]!;
          if (count === 3) return MONTHS[m]!.slice(0, 3);
          return pad(m + 1, count);
        }
        case 'd':
          return pad(d.getUTCDate(), count);
        case 'H':
          return pad(d.getUTCHours(), count);
        case 'k':
          return pad(d.getUTCHours() === 0 ? 24 : d.getUTCHours(), count);
        case 'K':
          return pad(d.getUTCHours() % 12, count);
        case 'h':
          return pad(d.getUTCHours() % 12 === 0 ? 12 : d.getUTCHours() % 12, count);
        case 'm':
          return pad(d.getUTCMinutes(), count);
        case 's':
          return pad(d.getUTCSeconds(), count);
        case 'S':
          return pad(d.getUTCMilliseconds(), count);
        case 'a':
          return d.getUTCHours() < 12 ? 'AM' : 'PM';
        case 'E':
          return count >= 4 ? DAYS[d.getUTCDay()]! : DAYS[d.getUTCDay()]!.slice(0, 3);
        case 'D': {
          const start = Date.UTC(d.getUTCFullYear(), 0, 1);
          return pad(Math.floor((ms - start) / 86_400_000) + 1, count);
        }
        default:
          return offsetText(letter, count);
      }
    })
    .join('');
}

/** Parses `text` with `pattern` (UTC); throws when it does not match, as SimpleDateFormat.parse. */
export function parseDate(text: string, pattern: string): number {
  const tokens = tokenize(pattern);
  if (typeof tokens === 'string') throw new Error(tokens);
  const parts: Record<string, number> = { y: 1970, M: 1, d: 1, H: 0, m: 0, s: 0, S: 0, offset: 0 };
  let pm: boolean | undefined;
  let hour12: number | undefined;
  let pos = 0;
  const fail = () => new Error(`Unparseable date: "${text}"`);
  const number = (max: number) => {
    const match = new RegExp(`^[+-]?\\d{1,${max}}`).exec(text.slice(pos));
    if (!match) throw fail();
    pos += match[0].length;
    return Number(match[0]);
  };
  tokens.forEach((t, i) => {
    if ('text' in t) {
      if (!text.startsWith(t.text, pos)) throw fail();
      pos += t.text.length;
      return;
    }
    // A numeric field followed directly by another numeric field takes exactly its width.
    const next = tokens[i + 1];
    const adjacent = next !== undefined && 'letter' in next;
    const width = adjacent ? t.count : 10;
    switch (t.letter) {
      case 'y':
        parts['y'] = number(adjacent ? t.count : 10);
        if (t.count === 2 && parts['y']! < 100) parts['y'] = 2000 + parts['y']!;
        break;
      case 'M':
        if (t.count >= 3) {
          const index = MONTHS.findIndex((m) =>
            text
              .slice(pos)
              .toLowerCase()
              .startsWith((t.count === 3 ? m.slice(0, 3) : m).toLowerCase()),
          );
          if (index === -1) throw fail();
          pos += t.count === 3 ? 3 : MONTHS[index]!.length;
          parts['M'] = index + 1;
        } else parts['M'] = number(width);
        break;
      case 'd':
        parts['d'] = number(width);
        break;
      case 'H':
      case 'k':
        parts['H'] = number(width) % 24;
        break;
      case 'K':
      case 'h':
        hour12 = number(width) % 12;
        break;
      case 'm':
        parts['m'] = number(width);
        break;
      case 's':
        parts['s'] = number(width);
        break;
      case 'S':
        parts['S'] = number(width);
        break;
      case 'a': {
        const am = text.slice(pos, pos + 2).toUpperCase();
        if (am !== 'AM' && am !== 'PM') throw fail();
        pm = am === 'PM';
        pos += 2;
        break;
      }
      case 'E': {
        const index = DAYS.findIndex((day) =>
          text.slice(pos).toLowerCase().startsWith(day.slice(0, 3).toLowerCase()),
        );
        if (index === -1) throw fail();
        pos += text.slice(pos).toLowerCase().startsWith(DAYS[index]!.toLowerCase()) ? DAYS[index]!.length : 3;
        break;
      }
      case 'D':
        parts['D'] = number(width);
        break;
      default: {
        const rest = text.slice(pos);
        if (rest.startsWith('Z') && t.letter === 'X') {
          pos += 1;
          break;
        }
        if (rest.startsWith('UTC') || rest.startsWith('GMT')) {
          pos += 3;
          break;
        }
        const match = /^([+-])(\d{2}):?(\d{2})?/.exec(rest);
        if (!match) throw fail();
        pos += match[0].length;
        parts['offset'] = (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3] ?? 0));
      }
    }
  });
  if (hour12 !== undefined) parts['H'] = hour12 + (pm ? 12 : 0);
  const base =
    parts['D'] !== undefined
      ? Date.UTC(parts['y']!, 0, parts['D'], parts['H'], parts['m'], parts['s'], parts['S'])
      : Date.UTC(parts['y']!, parts['M']! - 1, parts['d'], parts['H'], parts['m'], parts['s'], parts['S']);
  return base - parts['offset']! * 60_000;
}
