# Turns otpd.conf.example into the KEYS part of otpd.conf(5), so the
# manual says what the shipped example says and cannot drift from it.
#   awk -f man/conf2man.awk otpd.conf.example
# The example's layout: a header of comment paragraphs, then sections
# "#### TITLE ####", each of blocks separated by blank lines; a block is
# comment paragraphs ("#" lines between them) and its keys, shown
# commented out as "# key = default". Lines indented after "#" and the
# lines of a "# [table]" example are kept as they are (.nf).
function esc(s) {
  gsub(/\\/, "\\e", s)
  if (s ~ /^[.']/) s = "\\&" s
  return s
}
function flush_block(   i) {
  while (nlines > 0 && (lines[nlines] == ".IP" || lines[nlines] == ".PP")) nlines--
  if (nlines == 0 && nkeys == 0) return
  if (nkeys > 0) {
    for (i = 1; i <= nkeys; i++) {
      print (i == 1 ? ".TP" : ".TQ")
      print "\\fB" esc(keys[i]) "\\fR"
    }
  } else if (!in_header) {
    print ".PP"
  }
  for (i = 1; i <= nlines; i++) print lines[i]
  nlines = 0
  nkeys = 0
  in_example = 0
  in_table = 0
}
function add(line) { lines[++nlines] = line }
function text_line(s) {
  if (in_example) { add(".fi"); in_example = 0 }
  add(esc(s))
}
function example_line(s) {
  if (!in_example) { add(".nf"); in_example = 1 }
  add(esc(s))
}
BEGIN { in_header = 1; nlines = 0; nkeys = 0 }
NR == 1 { next }  # the title line: the page has its own
/^#+ [A-Z][A-Z ]* #+$/ {
  if (in_example) { add(".fi"); in_example = 0 }
  flush_block()
  if (in_header) { print ".SH KEYS"; in_header = 0 }
  title = $0
  gsub(/^#+ | #+$/, "", title)
  print ".SS " title
  next
}
/^$/ {
  if (in_example) { add(".fi"); in_example = 0 }
  flush_block()
  next
}
/^#$/ {
  if (in_example) { add(".fi"); in_example = 0 }
  if (nlines > 0 && nkeys == 0) add(in_header ? ".PP" : ".IP")
  next
}
/^# \[[a-z_]+\]$/ { in_table = 1 }
{
  line = $0
  sub(/^# ?/, "", line)
  if (in_table) { example_line(line); next }
  if (!in_header && line ~ /^[a-z][a-z0-9_]* = /) { keys[++nkeys] = line; next }
  if (line ~ /^  /) { example_line(line); next }
  text_line(line)
}
END {
  if (in_example) add(".fi")
  flush_block()
}
