// One CSV line -> its cells (RFC 4180 quoting: "a,b" is one cell, "" inside quotes is a quote).
// Lines are read one at a time so the source can store a byte offset after each; quoted cells
// spanning several lines are therefore not supported, which the FileSource docs say.
export function parseCsvLine(line: string, delimiter = ','): string[] {
  if (!line.includes('"')) return line.split(delimiter);
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell === '') quoted = true;
    else if (c === delimiter) {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  if (quoted) throw new Error('unterminated quoted cell');
  cells.push(cell);
  return cells;
}
