/*
 * core/cmd/docs.c -- argument descriptions for COMMAND DOCS, built from the
 * syntax line of each command table entry.
 *
 * Interactive clients (redis-cli's hints and completion) read a command's
 * arguments from COMMAND DOCS as a tree of maps {name, type, token, flags,
 * arguments}. Rather than a second hand-written table that could drift
 * from the first, the tree is parsed from the same syntax line that
 * docs/protocol.md shows, in the usual notation:
 *
 *   key value [NX | XX] [EX seconds | PX milliseconds] [key value ...]
 *
 *   - lowercase words are arguments ("key", "seconds");
 *   - UPPERCASE words are tokens; a token takes the arguments that follow
 *     it up to the next token: none (a pure token, "NX"), one word ("EX
 *     seconds") or several (a block, "AUTH username password");
 *   - [ ... ] is optional, a | b is one of;
 *   - "x [x ...]" marks x as repeating ("key value [key value ...]" makes
 *     the pair a repeating block); "[x ...]" alone is optional and
 *     repeating.
 *
 * Thread-safety: pure functions over constant strings; the tree lives on
 * the caller's stack.
 */
#include "core/cmd/cmd_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Nodes one syntax line may produce (the longest, SET's, needs ~20). */
#define DOCS_MAX_NODES  64
#define DOCS_MAX_KIDS   12
#define DOCS_MAX_LEX    64
#define DOCS_NAME_BYTES 40

enum docs_type {
    DOCS_KEY,
    DOCS_STRING,
    DOCS_PATTERN,
    DOCS_PURE_TOKEN,
    DOCS_ONEOF,
    DOCS_BLOCK,
};

static const char *const docs_type_names[] = {
    "key", "string", "pattern", "pure-token", "oneof", "block",
};

struct docs_node {
    char name[DOCS_NAME_BYTES];
    char token[DOCS_NAME_BYTES]; /* "" = none */
    int type;                    /* enum docs_type */
    bool optional;
    bool multiple;
    int nkid;
    int kid[DOCS_MAX_KIDS];
};

/* Lexemes: "[", "]", "|", "..." or a word. */
struct docs_lex {
    char s[DOCS_NAME_BYTES];
};

struct docs_tree {
    struct docs_lex lex[DOCS_MAX_LEX];
    int nlex;
    int pos;
    struct docs_node n[DOCS_MAX_NODES];
    int count;
    bool bad;
};

static bool
docs_lex_is(const struct docs_tree *t, int i, const char *s)
{
    return i < t->nlex && strcmp(t->lex[i].s, s) == 0;
}

static bool
docs_is_token(const char *w)
{
    return w[0] >= 'A' && w[0] <= 'Z';
}

static bool
docs_is_word(const struct docs_tree *t, int i)
{
    return i < t->nlex && !docs_lex_is(t, i, "[") && !docs_lex_is(t, i, "]") &&
           !docs_lex_is(t, i, "|") && !docs_lex_is(t, i, "...");
}

static void
docs_lex_all(struct docs_tree *t, const char *p)
{
    while (*p && !t->bad) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (t->nlex >= DOCS_MAX_LEX) {
            t->bad = true;
            return;
        }
        char *w = t->lex[t->nlex++].s;
        size_t n = 0;
        if (*p == '[' || *p == ']' || *p == '|') {
            w[n++] = *p++;
        } else {
            while (*p && *p != ' ' && *p != '[' && *p != ']' && *p != '|') {
                if (n + 1 < DOCS_NAME_BYTES) {
                    w[n++] = *p;
                }
                p++;
            }
        }
        w[n] = '\0';
    }
}

/* Bounded copy of a name (source and destination never overlap). */
static void
docs_set(char *dst, const char *src)
{
    size_t i;
    for (i = 0; src[i] != '\0' && i + 1 < DOCS_NAME_BYTES; i++) {
        dst[i] = src[i];
    }
    dst[i] = '\0';
}

static int
docs_new(struct docs_tree *t, int type, const char *name)
{
    if (t->count >= DOCS_MAX_NODES) {
        t->bad = true;
        return 0;
    }
    int i = t->count++;
    memset(&t->n[i], 0, sizeof(t->n[i]));
    t->n[i].type = type;
    docs_set(t->n[i].name, name);
    return i;
}

static void
docs_add_kid(struct docs_tree *t, int parent, int kid)
{
    struct docs_node *p = &t->n[parent];
    if (p->nkid >= DOCS_MAX_KIDS) {
        t->bad = true;
        return;
    }
    p->kid[p->nkid++] = kid;
}

static int
docs_arg(struct docs_tree *t, const char *w)
{
    int type = DOCS_STRING;
    if (strstr(w, "key") != NULL || strcmp(w, "source") == 0 ||
        strcmp(w, "destination") == 0) {
        type = DOCS_KEY;
    } else if (strcmp(w, "pattern") == 0) {
        type = DOCS_PATTERN;
    }
    return docs_new(t, type, w);
}

/* A list of items as one node: the item itself, or a block of them. */
static int
docs_group(struct docs_tree *t, const int *items, int n, const char *name)
{
    if (n == 1) {
        return items[0];
    }
    int b = docs_new(t, DOCS_BLOCK, name);
    for (int i = 0; i < n; i++) {
        docs_add_kid(t, b, items[i]);
    }
    return b;
}

static int docs_alts(struct docs_tree *t);

/*
 * "[x y ...]" at t->pos (just after "["): the words of a repeat marker,
 * or 0 when the bracket is something else.
 */
static int
docs_repeat_words(const struct docs_tree *t)
{
    int i = t->pos;
    int n = 0;

    while (docs_is_word(t, i)) {
        i++;
        n++;
    }
    if (n > 0 && docs_lex_is(t, i, "...") && docs_lex_is(t, i + 1, "]")) {
        return n;
    }
    return 0;
}

/*
 * Items up to "]", "|", the end, or (stop_at_token) the next token.
 * Fills items[] and returns their count.
 */
static int
docs_seq(struct docs_tree *t, int *items, int max, bool stop_at_token)
{
    int n = 0;

    while (t->pos < t->nlex && !t->bad && n < max) {
        const char *w = t->lex[t->pos].s;
        if (strcmp(w, "]") == 0 || strcmp(w, "|") == 0) {
            break;
        }
        if (strcmp(w, "[") == 0) {
            t->pos++;
            int k = docs_repeat_words(t);
            if (k > 0) {
                /* "x y [x y ...]": the run before repeats; "[x ...]" with
                 * no such run is an optional repeating x. */
                bool same = n >= k;
                for (int j = 0; same && j < k; j++) {
                    same = strcmp(t->n[items[n - k + j]].name,
                                  t->lex[t->pos + j].s) == 0;
                }
                int node;
                if (same) {
                    n -= k;
                    node = docs_group(t, items + n, k, "arg");
                } else {
                    int tmp[DOCS_MAX_KIDS];
                    for (int j = 0; j < k && j < DOCS_MAX_KIDS; j++) {
                        tmp[j] = docs_arg(t, t->lex[t->pos + j].s);
                    }
                    node = docs_group(t, tmp, k, "arg");
                    t->n[node].optional = true;
                }
                t->n[node].multiple = true;
                items[n++] = node;
                t->pos += k + 2; /* the words, "...", "]" */
                continue;
            }
            int node = docs_alts(t);
            if (!docs_lex_is(t, t->pos, "]")) {
                t->bad = true;
                break;
            }
            t->pos++;
            t->n[node].optional = true;
            items[n++] = node;
            continue;
        }
        if (strcmp(w, "...") == 0) {
            t->bad = true;
            break;
        }
        if (!docs_is_token(w)) {
            items[n++] = docs_arg(t, w);
            t->pos++;
            continue;
        }
        if (stop_at_token) {
            break;
        }
        /* A token and the arguments it introduces. */
        char lower[DOCS_NAME_BYTES];
        size_t i;
        for (i = 0; w[i] && i + 1 < sizeof(lower); i++) {
            lower[i] = (char)tolower((unsigned char)w[i]);
        }
        lower[i] = '\0';
        int tok = docs_new(t, DOCS_PURE_TOKEN, lower);
        docs_set(t->n[tok].token, w);
        t->pos++;
        int kids[DOCS_MAX_KIDS];
        int nk = docs_seq(t, kids, DOCS_MAX_KIDS, true);
        if (nk == 1 && t->n[kids[0]].type <= DOCS_PATTERN &&
            !t->n[kids[0]].optional && !t->n[kids[0]].multiple) {
            /* "EX seconds": the token introduces one argument. */
            t->n[tok].type = t->n[kids[0]].type;
            char arg[DOCS_NAME_BYTES];
            docs_set(arg, t->n[kids[0]].name);
            docs_set(t->n[tok].name, arg);
        } else if (nk > 0) {
            t->n[tok].type = DOCS_BLOCK;
            for (int j = 0; j < nk; j++) {
                docs_add_kid(t, tok, kids[j]);
            }
        }
        items[n++] = tok;
    }
    return n;
}

/* Alternatives "a | b | c", each a sequence; one node. */
static int
docs_alts(struct docs_tree *t)
{
    int alts[DOCS_MAX_KIDS];
    int nalt = 0;

    for (;;) {
        int items[DOCS_MAX_KIDS];
        int n = docs_seq(t, items, DOCS_MAX_KIDS, false);
        if (n == 0 || nalt >= DOCS_MAX_KIDS) {
            t->bad = true;
            return 0;
        }
        alts[nalt++] = docs_group(t, items, n, "arg");
        if (!docs_lex_is(t, t->pos, "|")) {
            break;
        }
        t->pos++;
    }
    if (nalt == 1) {
        return alts[0];
    }
    int o = docs_new(t, DOCS_ONEOF, "arg");
    for (int i = 0; i < nalt; i++) {
        docs_add_kid(t, o, alts[i]);
    }
    return o;
}

/* --- replies -------------------------------------------------------------- */

static void
docs_reply_node(struct kvd_cmd_ctx *x, const struct docs_tree *t, int i)
{
    const struct docs_node *n = &t->n[i];
    size_t fields = 2; /* name, type */
    size_t nflags = (size_t)n->optional + (size_t)n->multiple;

    fields += n->token[0] != '\0';
    fields += nflags > 0;
    fields += n->nkid > 0;
    kvd_cmd_reply_map(x, fields);
    kvd_cmd_reply_cstr(x, "name");
    kvd_cmd_reply_cstr(x, n->name);
    kvd_cmd_reply_cstr(x, "type");
    kvd_cmd_reply_cstr(x, docs_type_names[n->type]);
    if (n->token[0] != '\0') {
        kvd_cmd_reply_cstr(x, "token");
        kvd_cmd_reply_cstr(x, n->token);
    }
    if (nflags > 0) {
        kvd_cmd_reply_cstr(x, "flags");
        kvd_cmd_reply_array(x, nflags);
        if (n->optional) {
            kvd_cmd_reply_status(x, "optional");
        }
        if (n->multiple) {
            kvd_cmd_reply_status(x, "multiple");
        }
    }
    if (n->nkid > 0) {
        kvd_cmd_reply_cstr(x, "arguments");
        kvd_cmd_reply_array(x, (size_t)n->nkid);
        for (int k = 0; k < n->nkid; k++) {
            docs_reply_node(x, t, n->kid[k]);
        }
    }
}

/*
 * Parse `syntax` into *t. Returns the number of top-level arguments, or
 * -1 when the line cannot be parsed (then no arguments are reported).
 */
static int
docs_parse(struct docs_tree *t, const char *syntax, int *top, int max)
{
    memset(t, 0, sizeof(*t));
    docs_lex_all(t, syntax);
    int n = docs_seq(t, top, max, false);
    if (!t->bad && docs_lex_is(t, t->pos, "|")) {
        /* "A a | B b" at the top: one oneof argument. */
        t->pos = 0;
        t->count = 0;
        top[0] = docs_alts(t);
        n = 1;
    }
    if (t->bad || t->pos != t->nlex) {
        return -1;
    }
    return n;
}

bool
kvd_cmd_docs_has_args(const char *syntax)
{
    struct docs_tree t;
    int top[DOCS_MAX_KIDS];

    return syntax != NULL && syntax[0] != '\0' &&
           docs_parse(&t, syntax, top, DOCS_MAX_KIDS) > 0;
}

void
kvd_cmd_docs_reply_args(struct kvd_cmd_ctx *x, const char *syntax)
{
    struct docs_tree t;
    int top[DOCS_MAX_KIDS];
    int n = docs_parse(&t, syntax, top, DOCS_MAX_KIDS);

    if (n < 0) {
        n = 0;
    }
    kvd_cmd_reply_array(x, (size_t)n);
    for (int i = 0; i < n; i++) {
        docs_reply_node(x, &t, top[i]);
    }
}
