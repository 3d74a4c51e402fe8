/* Python `re` patterns on top of POSIX regcomp/regexec (REG_EXTENDED), for the regex string
 * nodes (RegexMatch, RegexExtract, RegexReplace). Private to src/nodes.
 *
 * ComfyUI hands the user's pattern to Python's `re`. comfyd has no Python, and a pack may use
 * only libc, so a Python pattern is translated to a POSIX extended regular expression, compiled
 * and run under the C.UTF-8 locale (set for the calling thread only, with uselocale, so that
 * "." and bracket expressions see code points, not bytes, and REG_ICASE folds non-ASCII
 * letters). What the translation does with Python syntax:
 *
 *   - \d -> [0-9]; \w -> [[:alnum:]_]; \s -> the exact set of str.isspace() characters;
 *     \D \W \S -> their complements, also inside [...] where POSIX allows it (a set that mixes
 *     a complement with other items becomes an alternation or is computed explicitly).
 *   - \b \B -> glibc's GNU word-boundary operators (\B never matching an empty string, as in
 *     Python); \A \Z -> glibc's buffer anchors \` and \'; so are ^ and $ without MULTILINE,
 *     because glibc lets a ^ or $ inside the pattern match next to any "\n".
 *   - (?:...) -> a plain group that is hidden from group numbering; (?P<name>...) and
 *     (?P=name) -> a numbered group and a back-reference; \1..\99 -> back-references (POSIX
 *     ERE has none, glibc has \1..\9); (?#...) comments are dropped; leading global flags
 *     (?imsx) set the matching flags; verbose (x) mode drops whitespace and # comments.
 *   - \n \t \r \f \v \a \xhh \uhhhh \Uhhhhhhhh and octal escapes -> the literal characters;
 *     an escaped metacharacter -> the POSIX escape; "{" that is not a valid repeat -> literal.
 *   - re.DOTALL, re.MULTILINE: "." -> [^\n] unless DOTALL; MULTILINE uses REG_NEWLINE, under
 *     which POSIX "." and negated sets stop matching "\n", so those get a hidden "|\n"
 *     alternative where Python would match a newline.
 *   - Character ranges outside ASCII are listed character by character: glibc's C.UTF-8
 *     rejects them ("Invalid collation character").
 *
 * What POSIX cannot express is refused with CD_PYRE_UNSUPPORTED rather than run with other
 * results: lookahead/lookbehind (?= ?! ?<= ?<!), atomic groups, possessive repeats,
 * conditionals, scoped flags (?i:...), \N{...}, the ASCII flag, back-references beyond the
 * ninth POSIX group, and lazy repeats (*? +? ?? {m,n}?), which are accepted only for a plain
 * yes/no search (CD_PYRE_LAZY_AS_GREEDY) where they do not change the answer. Parsing goes on
 * past such a construct, so that a pattern Python rejects is CD_PYRE_INVALID all the same.
 *
 * Differences that remain, by the nature of POSIX matching:
 *   - POSIX picks the leftmost-longest match, Python the first one its backtracking finds:
 *     "a|ab" on "ab" gives "ab" here, "a" in Python, and "a*(ab)?" on "aab" gives "aab" here,
 *     "aa" in Python; the span of a group can differ the same way. Whether a pattern matches
 *     at all (RegexMatch) never differs.
 *   - Without MULTILINE, Python's "$" also matches before a final "\n"; here only at the end.
 *   - \d is ASCII only (Python: any Unicode decimal digit); \w and IGNORECASE use glibc's
 *     Unicode tables, which may differ from Python's for rare characters (e.g. the Kelvin
 *     sign matching "k").
 *   - glibc 2.36 can misplace a \B that follows a repeat ("a*\B" on "xa" matches at the end).
 *
 * A differential run against Python's re (random patterns over these constructs, all flag
 * combinations, UTF-8 subjects) agreed on every match list except the cases above.
 */
#ifndef CD_NODES_PYREGEX_H
#define CD_NODES_PYREGEX_H

#include <stddef.h>
#include <stdint.h>

enum {
    CD_PYRE_IGNORECASE = 1u << 0,
    CD_PYRE_MULTILINE = 1u << 1,
    CD_PYRE_DOTALL = 1u << 2,
    CD_PYRE_LAZY_AS_GREEDY = 1u << 3, /* only whether there is a match matters */
};

enum {
    CD_PYRE_OK = 0,
    CD_PYRE_INVALID = -1,     /* Python's re would reject the pattern too (re.error) */
    CD_PYRE_UNSUPPORTED = -2, /* valid in Python, not expressible in POSIX ERE */
    CD_PYRE_NOMEM = -3,
};

typedef struct cd_pyre cd_pyre;

/* Compiles pattern (len bytes of UTF-8). On failure returns a CD_PYRE_* code and writes a
 * message in Python's words ("missing ), unterminated subpattern at position 0") to err. */
int cd_pyre_compile(cd_pyre **out, const char *pattern, size_t len, unsigned flags, char *err, size_t errlen);
void cd_pyre_free(cd_pyre *re);

/* Number of groups (Python's pattern.groups). */
int cd_pyre_groups(const cd_pyre *re);
/* Number of a named group, or -1. */
int cd_pyre_group_index(const cd_pyre *re, const char *name, size_t name_len);

/* pattern.search(s, pos): 1 with spans filled, 0 for no match, <0 on error. spans holds
 * 2 * (groups + 1) byte offsets, start and end of each group, -1 for a group that did not take
 * part in the match. */
int cd_pyre_search(cd_pyre *re, const char *s, size_t len, size_t pos, int64_t *spans);

/* pattern.finditer(s) with Python 3.7+'s rules for empty matches; stops after `max` matches
 * when max > 0, or when fn returns nonzero. Returns the number of matches, or <0 on error. */
typedef int (*cd_pyre_each_fn)(void *ctx, const int64_t *spans);
long cd_pyre_finditer(cd_pyre *re, const char *s, size_t len, long max, cd_pyre_each_fn fn, void *ctx);

#endif
