/* One GenBank entry -> gbf_record, for the common well-formed subset of the format.
 *
 * The reference is gb-io 0.9 (its stream parser) followed by bsm_data.genbank._record_from_gb.
 * Whatever this file accepts must give exactly the model the Python path gives, so it is
 * strict: every construct whose gb-io reading is unusual, lenient or merely not checked
 * here makes gbf_parse_entry return 0 and the entry goes through Python. gb-io behaviours
 * that shape the rules below (measured on gb-io 0.4.0 / gb-io 0.9.0):
 *
 * - LOCUS: "LOCUS name length bp moltype linear|circular DIV D-MMM-YYYY" is read as such;
 *   anything else (missing topology, "aa", a bad date) silently loses name, length and
 *   topology, so only the full 7-token form is accepted. Day 1..31, month upper case.
 * - Header lines up to FEATURES/ORIGIN/CONTIG are fields or ignored lines; the last
 *   VERSION / ACCESSION wins; a second DEFINITION is an error.
 * - "FEATURES" + spaces + "Location/Qualifiers" with nothing after it (trailing spaces are
 *   an error).
 * - A feature line is spaces + key + spaces; the column of the location (21 here) is the
 *   indent of every later line of the feature. A location or unquoted value continues on
 *   each next line that starts with 21 spaces and has no '/' in column 22 (the pieces are
 *   concatenated, extra indentation included); a quoted value continues over lines that
 *   start with 21 spaces (joined with '\n', or with nothing for /translation) and ends at
 *   a '"' that is directly followed by the end of the line. A '"' followed by anything
 *   else, a closing quote followed by a line of 21 spaces + '"' (an escaped quote split over
 *   the line break) or a line with less indentation makes gb-io re-read the value unquoted,
 *   quotes included: all of those are rejected here.
 * - Locations are parsed by prefix: "10.20" gives base 10, "1..5x" gives 1..5, spaces turn
 *   a join into an unparsable External. Here a kept feature's location must be consumed
 *   entirely by: loc := range | complement(loc) | join(loc,...) | order(loc,...),
 *   range := ['<']int'..'['>']int | int, 1 <= start <= end <= LOCUS length.
 * - The sequence is every letter after the ORIGIN line up to the first '/', digits, spaces
 *   and newlines skipped, anything else an error; its length must equal the LOCUS length.
 *   After "//" only newlines may follow.
 * - CONTIG ends the header; FEATURES after it is an error, so it is accepted only after the
 *   feature table (or with none), where gb-io reads it into Record.contig (unused here); its
 *   text must not start with ':' (an error).
 * - Non-ASCII bytes (gb-io requires UTF-8) and control characters (tabs, '\r') are rejected
 *   outright.
 */
#include "gbfast.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && !defined(GBF_PLAIN_SCAN)
#include <emmintrin.h>
#define GBF_SSE2 1
#endif

#define MAX_DEPTH 64               /* nesting of complement/join/order in one location */

/* ----------------------------------------------------------------------------- tables */

/* Sequence bytes: 0 skipped (digit, space, newline), 1 invalid, else the upper-case letter. */
static const unsigned char SEQ_TAB[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,
    1, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 1, 1, 1, 1, 1,
    1, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* ----------------------------------------------------------------------------- helpers */

/* 1 when [p, e) holds only printable ASCII (0x20..0x7f): no tab, '\r', control or non-ASCII
 * byte. Eight bytes at a time: a byte below 0x20 sets its high bit in (w - 0x20..) & ~w,
 * a non-ASCII byte has it set in w. */
static inline int clean(const char *p, const char *e)
{
    const uint64_t K = 0x2020202020202020ULL, H = 0x8080808080808080ULL;
    uint64_t acc = 0, w;
    Py_ssize_t n = e - p;
    if (n >= 8) {
        const char *last = e - 8;
        for (; p < last; p += 8) {
            memcpy(&w, p, 8);
            acc |= ((w - K) & ~w) | w;
        }
        memcpy(&w, last, 8); /* the (overlapping) last word */
        acc |= ((w - K) & ~w) | w;
        return (acc & H) == 0;
    }
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x80)
            return 0;
    }
    return 1;
}

static inline int starts(const char *p, const char *e, const char *lit, size_t n)
{
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

#ifdef GBF_SSE2
/* 16 bytes at p: bit i of *stop set where byte i is '\n' (or also '"' when quotes is set),
 * bit i of the result where it is below 0x20 or above 0x7f (signed compare). */
static inline unsigned scan16(const char *p, int quotes, unsigned *stop)
{
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i hit = _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'));
    if (quotes)
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    *stop = (unsigned)_mm_movemask_epi8(hit);
    return (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
}
#endif

/* The first '\n' (or, when quotes is set, the first '"' or '\n') in [p, limit), or NULL when
 * there is none or a byte before it is outside printable ASCII (see clean()): every line from
 * LOCUS to "//" must be clean. One pass finds the stop and checks the bytes before it, 16
 * (SSE2) or 8 at a time, then byte by byte. */
static inline const char *scan_line(const char *p, const char *limit, int quotes)
{
#if defined(GBF_SSE2)
    while (limit - p >= 16) {
        unsigned stop, bad = scan16(p, quotes, &stop);
        if (stop) {
            unsigned k = (unsigned)__builtin_ctz(stop);
            return (bad & ((1u << k) - 1)) ? NULL : p + k;
        }
        if (bad)
            return NULL;
        p += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__) && !defined(GBF_PLAIN_SCAN)
    const uint64_t K = 0x2020202020202020ULL, H = 0x8080808080808080ULL, L = 0x0101010101010101ULL;
    const uint64_t NL = 0x0a0a0a0a0a0a0a0aULL, QQ = 0x2222222222222222ULL;
    uint64_t acc = 0, w;
    while (limit - p >= 8) {
        memcpy(&w, p, 8);
        uint64_t a = w ^ NL, hit = (a - L) & ~a;
        if (quotes) {
            uint64_t b = w ^ QQ;
            hit |= (b - L) & ~b;
        }
        hit &= H; /* its lowest set bit marks the first stop byte */
        if (hit) {
            int k = __builtin_ctzll(hit) >> 3;
            if (k) { /* bytes before the stop; the others read as spaces */
                uint64_t m = (1ULL << (8 * k)) - 1, v = (w & m) | (K & ~m);
                acc |= ((v - K) & ~v) | v;
            }
            return (acc & H) ? NULL : p + k;
        }
        acc |= ((w - K) & ~w) | w;
        p += 8;
    }
    if (acc & H)
        return NULL;
#endif
    for (; p < limit; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\n' || (quotes && ch == '"'))
            return p;
        if (ch < 0x20 || ch >= 0x80)
            return NULL;
    }
    return NULL;
}

/* The end ('\n') of the line at p (see scan_line). */
static inline const char *next_line(const char *p, const char *limit) { return scan_line(p, limit, 0); }

/* p[0..21) are spaces (the caller knows the 21 bytes are there). */
static inline int sp21(const char *p)
{
    const uint64_t S = 0x2020202020202020ULL;
    uint64_t a, b, c;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    memcpy(&c, p + 13, 8);
    return ((a ^ S) | (b ^ S) | (c ^ S)) == 0;
}

/* Non-negative decimal of at most 15 digits (gb-io: i64 / u64, leading zeros allowed). */
static int parse_uint(const char **pp, const char *e, Py_ssize_t *out)
{
    const char *p = *pp;
    Py_ssize_t v = 0;
    int nd = 0;
    while (p < e && is_digit(*p)) {
        if (++nd > 15)
            return 0;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (!nd)
        return 0;
    *pp = p;
    *out = v;
    return 1;
}

/* ----------------------------------------------------------------------------- parse state */

typedef struct {
    gbf_record *rec;
    Py_ssize_t length; /* LOCUS length */
    Py_ssize_t np;     /* parts used in rec->part_pool */
    int saw_order;     /* the location being parsed has an order() */
} ctx_t;

static int grow(void **buf, Py_ssize_t *cap, Py_ssize_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    Py_ssize_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    if ((size_t)ncap > PY_SSIZE_T_MAX / item)
        return -1;
    void *p = realloc(*buf, (size_t)ncap * item);
    if (!p)
        return -1;
    *buf = p;
    *cap = ncap;
    return 0;
}

static int add_part(ctx_t *c, Py_ssize_t start, Py_ssize_t end, int strand, int before, int after)
{
    gbf_record *r = c->rec;
    if (c->np >= r->part_cap && grow((void **)&r->part_pool, &r->part_cap, c->np + 1, sizeof(gbf_part)) < 0)
        return -1;
    gbf_part *p = &r->part_pool[c->np++];
    p->start = start;
    p->end = end;
    p->strand = strand;
    p->before = before;
    p->after = after;
    return 1;
}

/* ----------------------------------------------------------------------------- locations */

/* loc at *pp (not past e) -> parts appended in transcript order, as _gb_parts orders them.
 * 1 parsed, 0 outside the grammar, -1 out of memory. */
static int loc_parse(ctx_t *c, const char **pp, const char *e, int strand, int depth)
{
    const char *p = *pp;
    if (depth > MAX_DEPTH || p >= e)
        return 0;
    if (*p == 'c') {
        if (!starts(p, e, "complement(", 11))
            return 0;
        p += 11;
        Py_ssize_t k0 = c->np;
        int r = loc_parse(c, &p, e, -strand, depth + 1);
        if (r <= 0)
            return r;
        if (p >= e || *p != ')')
            return 0;
        p++;
        gbf_part *pool = c->rec->part_pool;
        for (Py_ssize_t i = k0, j = c->np - 1; i < j; i++, j--) {
            gbf_part t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
        }
        *pp = p;
        return 1;
    }
    if (*p == 'j' || *p == 'o') {
        if (starts(p, e, "join(", 5))
            p += 5;
        else if (starts(p, e, "order(", 6)) {
            p += 6;
            c->saw_order = 1;
        }
        else
            return 0;
        for (;;) {
            int r = loc_parse(c, &p, e, strand, depth + 1);
            if (r <= 0)
                return r;
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == ')') {
                p++;
                break;
            }
            return 0;
        }
        *pp = p;
        return 1;
    }
    int before = 0, after = 0;
    Py_ssize_t a, b;
    if (*p == '<') {
        before = 1;
        p++;
    }
    if (!parse_uint(&p, e, &a))
        return 0;
    if (e - p >= 2 && p[0] == '.' && p[1] == '.') {
        p += 2;
        if (p < e && *p == '>') {
            after = 1;
            p++;
        }
        if (!parse_uint(&p, e, &b))
            return 0;
    }
    else {
        if (before) /* "<5": gb-io reads no single position with '<' */
            return 0;
        b = a;
    }
    if (a < 1 || b < a || b > c->length)
        return 0;
    *pp = p;
    return add_part(c, a - 1, b, strand, before, after);
}

/* ----------------------------------------------------------------------------- features */

static int kind_of(const char *k, Py_ssize_t n)
{
    switch (n) {
    case 3:
        return memcmp(k, "CDS", 3) == 0 ? GBF_KIND_CDS : -1;
    case 4:
        if (memcmp(k, "gene", 4) == 0)
            return GBF_KIND_GENE;
        if (memcmp(k, "mRNA", 4) == 0)
            return GBF_KIND_MRNA;
        if (memcmp(k, "tRNA", 4) == 0 || memcmp(k, "rRNA", 4) == 0)
            return GBF_KIND_RNA;
        return -1;
    case 5:
        return memcmp(k, "ncRNA", 5) == 0 || memcmp(k, "tmRNA", 5) == 0 ? GBF_KIND_RNA : -1;
    case 8:
        return memcmp(k, "misc_RNA", 8) == 0 ? GBF_KIND_RNA : -1;
    case 13:
        return memcmp(k, "precursor_RNA", 13) == 0 ? GBF_KIND_RNA : -1;
    }
    return -1;
}

enum { Q_NONE = -1, Q_DB_XREF = GBF_NQ, Q_TRANSL_EXCEPT = GBF_NQ + 1 };

#define IS(lit) (memcmp(k, lit, sizeof(lit) - 1) == 0)

/* The wanted qualifier keys (GBF_Q_*, plus db_xref and transl_except); Q_NONE for others. */
static int qual_id(const char *k, Py_ssize_t n)
{
    switch (n) {
    case 4:
        return IS("gene") ? GBF_Q_GENE : Q_NONE;
    case 6:
        return IS("pseudo") ? GBF_Q_PSEUDO : Q_NONE;
    case 7:
        return IS("product") ? GBF_Q_PRODUCT : IS("db_xref") ? Q_DB_XREF : Q_NONE;
    case 9:
        return IS("locus_tag") ? GBF_Q_LOCUS_TAG : IS("exception") ? GBF_Q_EXCEPTION : Q_NONE;
    case 10:
        return IS("protein_id") ? GBF_Q_PROTEIN_ID : IS("pseudogene") ? GBF_Q_PSEUDOGENE : Q_NONE;
    case 11:
        return IS("codon_start") ? GBF_Q_CODON_START : IS("translation") ? GBF_Q_TRANSLATION : Q_NONE;
    case 12:
        return IS("transl_table") ? GBF_Q_TRANSL_TABLE : Q_NONE;
    case 13:
        return IS("transcript_id") ? GBF_Q_TRANSCRIPT_ID : IS("transl_except") ? Q_TRANSL_EXCEPT : Q_NONE;
    case 14:
        return IS("trans_splicing") ? GBF_Q_TRANS_SPLICING : Q_NONE;
    case 18:
        return IS("ribosomal_slippage") ? GBF_Q_RIBOSOMAL_SLIPPAGE : Q_NONE;
    }
    return Q_NONE;
}

#undef IS

/* The kept feature's location: the first line from column 22 plus each continuation line
 * from column 22 (first_line .. loc_end, the end of the last continuation line). */
static int finish_location(ctx_t *c, gbf_feature *f, const char *first_line, const char *loc_end,
                           int multi)
{
    char stackbuf[4096], *heap = NULL;
    const char *s, *e;
    const char *eol = memchr(first_line, '\n', (size_t)(loc_end - first_line));
    if (!eol)
        eol = loc_end;
    if (!multi) {
        s = first_line + 21;
        e = eol;
    }
    else {
        Py_ssize_t total = 0;
        const char *l = first_line, *le = eol;
        for (;;) { /* sizes first */
            total += le - (l + 21);
            if (le >= loc_end)
                break;
            l = le + 1;
            le = memchr(l, '\n', (size_t)(loc_end - l));
            if (!le)
                le = loc_end;
        }
        char *buf = stackbuf;
        if (total > (Py_ssize_t)sizeof(stackbuf)) {
            heap = malloc((size_t)total);
            if (!heap)
                return -1;
            buf = heap;
        }
        char *w = buf;
        l = first_line;
        le = eol;
        for (;;) {
            memcpy(w, l + 21, (size_t)(le - (l + 21)));
            w += le - (l + 21);
            if (le >= loc_end)
                break;
            l = le + 1;
            le = memchr(l, '\n', (size_t)(loc_end - l));
            if (!le)
                le = loc_end;
        }
        s = buf;
        e = w;
    }
    Py_ssize_t k0 = c->np;
    c->saw_order = 0;
    const char *p = s;
    int r = loc_parse(c, &p, e, 1, 0);
    if (r > 0 && p != e)
        r = 0;
    free(heap);
    if (r <= 0)
        return r;
    f->nparts = (int)(c->np - k0);
    f->is_order = c->saw_order && f->nparts > 1;
    return 1;
}

/* The first '"' or '\n' in [s, limit): the scan of a quoted value (see scan_line). */
static inline const char *quote_or_eol(const char *s, const char *limit) { return scan_line(s, limit, 1); }

/* A quoted value whose opening quote is just before s. Sets the value span (without
 * quotes), whether it spans lines or holds a doubled quote, and the start of the line after
 * it. 0 when gb-io would not read it as a quoted value (it then re-reads it unquoted). */
static int quoted(const char *s, const char *limit, const char **vend, const char **next,
                  int *multiline, int *escape)
{
    for (;;) {
        const char *q = quote_or_eol(s, limit);
        if (!q || limit - q < 2)
            return 0;
        if (*q == '"') {
            if (q[1] == '"') { /* "" */
                *escape = 1;
                s = q + 2;
                continue;
            }
            if (q[1] != '\n')
                return 0; /* '"' then something else */
            const char *nl = q + 2;
            if (limit - nl >= 22 && sp21(nl) && nl[21] == '"')
                return 0; /* a "" split over the line break */
            *vend = q;
            *next = nl;
            return 1;
        }
        /* the line ends inside the value: it goes on if the next line is indented */
        const char *nl = q + 1;
        if (limit - nl < 22 || !sp21(nl))
            return 0;
        *multiline = 1;
        s = nl + 21;
    }
}

static gbf_feature *new_feature(ctx_t *c)
{
    gbf_record *r = c->rec;
    if (r->nfeatures >= r->feature_cap &&
        grow((void **)&r->features, &r->feature_cap, (Py_ssize_t)r->nfeatures + 1, sizeof(gbf_feature)) < 0)
        return NULL;
    gbf_feature *f = &r->features[r->nfeatures++];
    memset(f, 0, sizeof(*f));
    return f;
}

static void set_qual(gbf_qual *q, const char *s, const char *e, int has_value, int multiline)
{
    q->present = 1;
    q->has_value = has_value;
    q->multiline = multiline;
    q->value.p = s;
    q->value.n = e - s;
}

enum { ST_NONE, ST_LOC, ST_BARE, ST_QUAL };

/* The feature table, from the line after the FEATURES header; *pp is left on the first line
 * that does not start with a space. */
static int features(ctx_t *c, const char **pp, const char *limit)
{
    gbf_record *rec = c->rec;
    const char *p = *pp, *eol;
    int st = ST_NONE, index = -1, fi = -1, bare_used = 0, loc_multi = 0;
    const char *loc_line = NULL, *loc_end = NULL;
    int r;

#define FINISH_LOCATION()                                                                      \
    do {                                                                                       \
        if (st == ST_LOC && fi >= 0 &&                                                         \
            (r = finish_location(c, &rec->features[fi], loc_line, loc_end, loc_multi)) <= 0)   \
            return r;                                                                          \
    } while (0)

    for (;;) {
        if (p >= limit)
            return 0;
        if (*p != ' ')
            break; /* a line in column 0 (or an empty one) ends the table */
        if (limit - p < 22) /* the table is followed by ORIGIN and the sequence */
            return 0;
        if (sp21(p) && p[21] == '/') { /* a qualifier */
            if (st == ST_NONE)
                return 0;
            FINISH_LOCATION();
            const char *k = p + 22, *x = k;
            while (x < limit && *x != '=' && *x != '\n') {
                if ((unsigned char)*x < 0x20 || (unsigned char)*x >= 0x80)
                    return 0;
                x++;
            }
            if (x >= limit || x == k)
                return 0;
            int id = Q_NONE;
            gbf_qual *qs = NULL;
            if (fi >= 0) {
                id = qual_id(k, x - k);
                if (id == Q_TRANSL_EXCEPT)
                    return 0;
                qs = rec->features[fi].q;
            }
            if (*x == '\n') { /* a flag */
                if (id >= 0 && id < GBF_NQ && !qs[id].present)
                    set_qual(&qs[id], x, x, 0, 0);
                st = ST_QUAL;
                p = x + 1;
                continue;
            }
            const char *v = x + 1;
            if (v < limit && *v == '"') {
                const char *vend = NULL, *next = NULL;
                int multiline = 0, escape = 0;
                if (!quoted(v + 1, limit, &vend, &next, &multiline, &escape))
                    return 0;
                v++;
                if (id == Q_DB_XREF) {
                    if (!qs[GBF_Q_GENE_ID].present && vend - v >= 7 && memcmp(v, "GeneID:", 7) == 0) {
                        if (multiline || escape)
                            return 0;
                        set_qual(&qs[GBF_Q_GENE_ID], v + 7, vend, 1, 0);
                    }
                }
                else if (id >= 0 && !qs[id].present) {
                    if (escape || (multiline && id != GBF_Q_PRODUCT && id != GBF_Q_TRANSLATION))
                        return 0;
                    set_qual(&qs[id], v, vend, 1, multiline);
                }
                st = ST_QUAL;
                p = next;
                continue;
            }
            /* unquoted: the rest of the line, plus continuation lines */
            if (!(eol = next_line(v, limit)))
                return 0;
            bare_used = 0;
            if (id == Q_DB_XREF) {
                if (!qs[GBF_Q_GENE_ID].present) {
                    bare_used = 1; /* a continuation could complete a "GeneID:" */
                    if (eol - v >= 7 && memcmp(v, "GeneID:", 7) == 0)
                        set_qual(&qs[GBF_Q_GENE_ID], v + 7, eol, 1, 0);
                }
            }
            else if (id >= 0 && !qs[id].present) {
                bare_used = 1;
                set_qual(&qs[id], v, eol, 1, 0);
            }
            st = ST_BARE;
            p = eol + 1;
            continue;
        }
        if (!(eol = next_line(p, limit)))
            return 0;
        if (sp21(p)) { /* 21 spaces and no '/': continues a location or an unquoted value */
            if (st == ST_LOC) {
                loc_multi = 1;
                loc_end = eol;
            }
            else if (st != ST_BARE || bare_used)
                return 0;
            p = eol + 1;
            continue;
        }
        if (eol - p >= 22 && p[1] == ' ' && p[2] == ' ' && p[3] == ' ' && p[4] == ' ' && p[5] != ' ') {
            /* a feature line */
            FINISH_LOCATION();
            Py_ssize_t k = 5;
            while (k < 21 && p[k] != ' ')
                k++;
            if (k == 21) /* a key of 16+ characters moves the indent */
                return 0;
            for (Py_ssize_t j = k; j < 21; j++)
                if (p[j] != ' ')
                    return 0;
            if (p[21] == ' ' || p[21] == ':')
                return 0;
            if (index == INT32_MAX - 1)
                return 0;
            index++;
            int kind = kind_of(p + 5, k - 5);
            fi = -1;
            if (kind >= 0) {
                gbf_feature *f = new_feature(c);
                if (!f)
                    return -1;
                f->index = index;
                f->kind = kind;
                f->kind_name.p = p + 5;
                f->kind_name.n = k - 5;
                fi = rec->nfeatures - 1;
            }
            st = ST_LOC;
            loc_line = p;
            loc_end = eol;
            loc_multi = 0;
            p = eol + 1;
            continue;
        }
        return 0;
    }
    FINISH_LOCATION();
#undef FINISH_LOCATION
    *pp = p;
    return 1;
}

/* ----------------------------------------------------------------------------- LOCUS */

static int locus_line(const char *p, const char *eol, gbf_record *rec, gbf_str *name, Py_ssize_t *length)
{
    static const char MONTHS[] = "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC";
    const char *tok[8];
    Py_ssize_t tlen[8];
    int nt = 0;
    if (!starts(p, eol, "LOCUS ", 6) || !clean(p, eol))
        return 0;
    for (const char *q = p + 5; q < eol;) {
        while (q < eol && *q == ' ')
            q++;
        if (q == eol)
            break;
        if (nt == 7)
            return 0;
        tok[nt] = q;
        while (q < eol && *q != ' ')
            q++;
        tlen[nt] = q - tok[nt];
        nt++;
    }
    if (nt != 7)
        return 0;
    if (memchr(tok[0], ':', (size_t)tlen[0]))
        return 0;
    const char *d = tok[1];
    if (!parse_uint(&d, tok[1] + tlen[1], length) || d != tok[1] + tlen[1] || *length <= 0)
        return 0;
    if (tlen[2] != 2 || memcmp(tok[2], "bp", 2) != 0)
        return 0;
    if (tlen[4] == 6 && memcmp(tok[4], "linear", 6) == 0)
        rec->circular = 0;
    else if (tlen[4] == 8 && memcmp(tok[4], "circular", 8) == 0)
        rec->circular = 1;
    else
        return 0;
    for (Py_ssize_t i = 0; i < tlen[5]; i++) {
        char ch = tok[5][i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
            return 0;
    }
    /* D-MMM-YYYY or DD-MMM-YYYY, day 1..31 (gb-io checks no more than that) */
    const char *t = tok[6];
    Py_ssize_t tl = tlen[6], nd = tl - 9;
    if (nd != 1 && nd != 2)
        return 0;
    int day = 0;
    for (Py_ssize_t i = 0; i < nd; i++) {
        if (!is_digit(t[i]))
            return 0;
        day = day * 10 + (t[i] - '0');
    }
    if (day < 1 || day > 31 || t[nd] != '-' || t[nd + 4] != '-')
        return 0;
    int month_ok = 0;
    for (int m = 0; m < 12; m++)
        if (memcmp(t + nd + 1, MONTHS + 3 * m, 3) == 0)
            month_ok = 1;
    if (!month_ok)
        return 0;
    for (int i = 0; i < 4; i++)
        if (!is_digit(t[nd + 5 + i]))
            return 0;
    name->p = tok[0];
    name->n = tlen[0];
    return 1;
}

/* First token of a header field's first line ("VERSION     NC_000913.3  GI:..."); 0 when
 * the first line holds none. */
static int field_token(const char *p, const char *eol, Py_ssize_t keylen, gbf_str *out)
{
    const char *q = p + keylen;
    while (q < eol && *q == ' ')
        q++;
    if (q == eol)
        return 0;
    const char *s = q;
    while (q < eol && *q != ' ')
        q++;
    out->p = s;
    out->n = q - s;
    return 1;
}

/* ----------------------------------------------------------------------------- sequence */

/* 8 bytes at p, all ASCII letters: their upper case in *out. Per byte, with x = b | 0x20
 * (< 0x80), x + 0x1f has its high bit set iff x >= 'a', x + 0x05 iff x > 'z'. */
static inline int letters8(const unsigned char *p, uint64_t *out)
{
    const uint64_t H = 0x8080808080808080ULL, C = 0x2020202020202020ULL;
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t x = w | C, lo = x + 0x1f1f1f1f1f1f1f1fULL, hi = x + 0x0505050505050505ULL;
    if ((w & H) || (lo & ~hi & H) != H)
        return 0;
    *out = w & ~C;
    return 1;
}

/* A standard 76-byte sequence line, "%9d" then six " " + 10 letters, then '\n': its 60 letters
 * upper-cased to dst. 0 (dst bytes then undefined) when the line is anything else; the caller
 * then reads it with the table, which gives the same result for every line this accepts. */
static inline int std_line(const unsigned char *s, unsigned char *dst)
{
    unsigned skip = 0;
    for (int i = 0; i < 9; i++)
        skip |= SEQ_TAB[s[i]];
    for (int g = 0; g < 6; g++) {
        const unsigned char *q = s + 10 + 11 * g;
        uint64_t a, b;
        skip |= SEQ_TAB[q[-1]];
        if (!letters8(q, &a) || !letters8(q + 2, &b))
            return 0;
        memcpy(dst + 10 * g, &a, 8);
        memcpy(dst + 10 * g + 2, &b, 8);
    }
    return skip == 0 && s[75] == '\n';
}

/* The sequence lines [s, se): letters upper-cased into dst, digits, spaces and newlines
 * skipped (gb-io's parse_seq_data); 0 on any other byte or unless exactly length letters. */
static int sequence(const unsigned char *s, const unsigned char *se, unsigned char *dst, Py_ssize_t length)
{
    unsigned char *base = dst;
    while (s < se) {
        while (se - s >= 76 && length - (dst - base) >= 60 && std_line(s, dst)) {
            s += 76;
            dst += 60;
        }
        if (s >= se)
            break;
        /* one line by table (the last, short line of a record, or a non-standard one) */
        const unsigned char *le = memchr(s, '\n', (size_t)(se - s));
        le = le ? le + 1 : se;
        unsigned bad = 0;
        while (s < le) {
            Py_ssize_t room = length - (dst - base), chunk = le - s;
            if (room == 0) { /* all letters are in: only separators may remain */
                if (bad)
                    return 0;
                for (; s < se; s++)
                    if (SEQ_TAB[*s] != 0)
                        return 0;
                return 1;
            }
            if (chunk > room) /* a chunk then stores at most room letters (+1 slack byte) */
                chunk = room;
            for (const unsigned char *ce = s + chunk; s < ce; s++) {
                unsigned char v = SEQ_TAB[*s];
                *dst = v;
                dst += v > 1;
                bad |= v == 1;
            }
        }
        if (bad)
            return 0;
    }
    return dst - base == length;
}

/* ----------------------------------------------------------------------------- entry */

static int parse(ctx_t *c, const char *text, Py_ssize_t n)
{
    gbf_record *rec = c->rec;
    const char *p = text, *e = text + n;

    /* the terminator: a "//" line, then nothing but newlines */
    while (e > p && e[-1] == '\n')
        e--;
    if (e - p < 2 || e[-1] != '/' || e[-2] != '/')
        return 0;
    const char *limit = e - 2; /* start of the "//" line: everything else lies before it */
    if (limit > p && limit[-1] != '\n')
        return 0;

    /* blank lines before LOCUS */
    const char *eol;
    for (;;) {
        if (p >= limit)
            return 0;
        eol = memchr(p, '\n', (size_t)(limit - p));
        if (!eol)
            return 0;
        const char *q = p;
        while (q < eol && *q == ' ')
            q++;
        if (q != eol)
            break;
        p = eol + 1;
    }

    gbf_str name, version = {NULL, 0}, accession = {NULL, 0};
    if (!locus_line(p, eol, rec, &name, &c->length))
        return 0;
    p = eol + 1;

    /* header fields, up to FEATURES or ORIGIN */
    int ndef = 0, have_features = 0;
    for (;;) {
        if (p >= limit)
            return 0;
        eol = next_line(p, limit);
        if (!eol)
            return 0;
        switch (*p) {
        case 'F':
            if (starts(p, eol, "FEATURES", 8)) {
                const char *q = p + 8;
                if (q == eol || *q != ' ')
                    return 0;
                while (q < eol && *q == ' ')
                    q++;
                if (eol - q != 19 || memcmp(q, "Location/Qualifiers", 19) != 0)
                    return 0;
                have_features = 1;
                goto header_done;
            }
            break;
        case 'O':
            if (starts(p, eol, "ORIGIN", 6))
                goto header_done;
            break;
        case 'C':
            if (starts(p, eol, "CONTIG", 6))
                goto header_done; /* CONTIG before FEATURES: only valid without them */
            break;
        case 'V':
            if (starts(p, eol, "VERSION ", 8) && !field_token(p, eol, 8, &version))
                return 0;
            break;
        case 'A':
            if (starts(p, eol, "ACCESSION ", 10) && !field_token(p, eol, 10, &accession))
                return 0;
            break;
        case 'D':
            if (starts(p, eol, "DEFINITION ", 11) && ++ndef > 1)
                return 0; /* gb-io: "Field 'DEFINITION' occurred twice!" */
            break;
        }
        p = eol + 1;
    }
header_done:
    if (have_features) {
        int r;
        p = eol + 1;
        if ((r = features(c, &p, limit)) <= 0)
            return r;
        eol = next_line(p, limit); /* features() saw a whole line here */
        if (!eol)
            return 0;
        if (starts(p, eol, "BASE COUNT ", 11)) {
            p = eol + 1;
            if (p >= limit || !(eol = next_line(p, limit)))
                return 0;
        }
    }
    /* CONTIG (kept by gb-io in Record.contig, unused here): its text must parse as a
     * location, which holds for anything not starting with ':'; it goes on over lines
     * indented past "CONTIG" and its spaces. */
    if (starts(p, eol, "CONTIG", 6)) {
        const char *q = p + 6;
        while (q < eol && *q == ' ')
            q++;
        Py_ssize_t indent = q - p;
        if (q == p + 6 || q == eol || *q == ':')
            return 0;
        for (;;) {
            p = eol + 1;
            if (p >= limit || !(eol = next_line(p, limit)))
                return 0;
            Py_ssize_t k = 0;
            while (k < indent && p + k < eol && p[k] == ' ')
                k++;
            if (k < indent)
                break;
        }
    }
    /* ORIGIN, with nothing after it on its line */
    if (!starts(p, eol, "ORIGIN", 6))
        return 0;
    for (const char *q = p + 6; q < eol; q++)
        if (*q != ' ')
            return 0;

    /* the sequence: letters upper-cased, digits/spaces/newlines skipped, anything else -> 0 */
    const unsigned char *s = (const unsigned char *)eol + 1, *se = (const unsigned char *)limit;
    Py_ssize_t length = c->length;
    if (length > se - s)
        return 0;
    if (rec->seq_cap < length + 1) {
        char *buf = malloc((size_t)length + 1);
        if (!buf)
            return -1;
        free(rec->seq);
        rec->seq = buf;
        rec->seq_cap = length + 1;
    }
    if (!sequence(s, se, (unsigned char *)rec->seq, length))
        return 0;
    rec->length = length;

    /* the parts pool no longer moves */
    Py_ssize_t off = 0;
    for (int i = 0; i < rec->nfeatures; i++) {
        rec->features[i].parts = rec->part_pool + off;
        off += rec->features[i].nparts;
    }
    rec->id = version.p ? version : accession.p ? accession : name;
    return 1;
}

int gbf_parse_entry(const char *text, Py_ssize_t n, gbf_record *rec)
{
    ctx_t c;
    c.rec = rec;
    c.length = 0;
    c.np = 0;
    c.saw_order = 0;
    rec->nfeatures = 0;
    rec->length = 0;
    rec->circular = 0;
    rec->id.p = NULL;
    rec->id.n = 0;
    int r = text && n > 0 ? parse(&c, text, n) : 0;
    if (r != 1) {
        rec->nfeatures = 0;
        rec->length = 0;
        rec->id.p = NULL;
        rec->id.n = 0;
        if (r < 0)
            PyErr_NoMemory();
    }
    return r;
}

void gbf_record_clear(gbf_record *rec)
{
    free(rec->seq);
    free(rec->features);
    free(rec->part_pool);
    memset(rec, 0, sizeof(*rec));
}
