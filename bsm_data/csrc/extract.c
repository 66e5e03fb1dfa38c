/* gbf_record -> gene rows: the compiled twin of bsm_data.genbank._Extractor.record.
 *
 * Every rule here mirrors a function of genbank.py (named in the comments); the tests run
 * both paths over the bundled GenBank files and the synthetic edge cases and compare every
 * row, reject and count. Records this file cannot finish exactly as the Python path would
 * (an unknown genetic code, a /transl_table that is not plain digits) return None and are
 * redone in Python.
 *
 * Row layout (Python assigns the unique keys and builds GeneSequences / Reject):
 *   gene:   (base_key, protein_id or None, kind, dna or None, rna, protein or None, cds or None,
 *            attributes)
 *   reject: (reason, detail, item_id)
 */
#include "gbfast.h"
#include <string.h>

enum {
    N_RNA_FEATURE_WITH_CDS, N_MRNA_EXTERNAL, N_MRNA_INCONSISTENT, N_FLANK_CLIPPED,
    N_BAD_CODON_START, N_ALTERNATIVE_START, N_TRANSLATION_MISMATCH, N_TRANSLATED,
    N_INTERNAL_STOP, N_RNA_FROM_FEATURE, N_RNA_FROM_MRNA, N_RNA_FROM_CDS, N_PARTIAL_5,
    N_PARTIAL_3, N_ORDER_LOCATION, N_TRANS_SPLICED, N_NONCOLINEAR_NO_DNA, N_NOTES
};
static const char *NOTE_NAMES[N_NOTES] = {
    "rna_feature_with_cds", "mrna_external", "mrna_inconsistent", "flank_clipped",
    "bad_codon_start", "alternative_start", "translation_mismatch", "translated",
    "internal_stop", "rna_from_feature", "rna_from_mrna", "rna_from_cds", "partial_5",
    "partial_3", "order_location", "trans_spliced", "noncolinear_no_dna",
};

enum {
    A_GENE, A_LOCUS_TAG, A_PROTEIN_ID, A_TRANSCRIPT_ID, A_GENE_ID, A_PRODUCT, A_TRANSL_TABLE,
    A_CODON_START, A_PARTIAL_5, A_PARTIAL_3, A_LOCATION, A_STRAND, A_FLANK_5, A_FLANK_3,
    A_RNA_SOURCE, A_TRANSLATION_CHECK, A_TRANS_SPLICED, A_MRNA_LOCATION, A_EXCEPTION,
    A_RIBOSOMAL_SLIPPAGE, N_ATTRS
};
static const char *ATTR_NAMES[N_ATTRS] = {
    "gene", "locus_tag", "protein_id", "transcript_id", "gene_id", "product", "transl_table",
    "codon_start", "partial_5", "partial_3", "location", "strand", "flank_5", "flank_3",
    "rna_source", "translation_check", "trans_spliced", "mrna_location", "exception",
    "ribosomal_slippage",
};
static PyObject *attr_keys[N_ATTRS], *note_keys[N_NOTES];
static PyObject *s_empty, *s_mrna, *s_cds_src, *s_feature, *s_match, *s_mismatch,
    *s_translated, *s_none_check;

/* bytes.maketrans(b"ACGTURYSWKMBDHVNacgturyswkmbdhvn", b"TGCAAYRSWMKVHDBNTGCAAYRSWMKVHDBN") */
static unsigned char COMPLEMENT[256];

int gbf_extract_init(PyObject *module)
{
    for (int i = 0; i < N_ATTRS; i++)
        if (!(attr_keys[i] = PyUnicode_InternFromString(ATTR_NAMES[i])))
            return -1;
    for (int i = 0; i < N_NOTES; i++)
        if (!(note_keys[i] = PyUnicode_InternFromString(NOTE_NAMES[i])))
            return -1;
    if (!(s_empty = PyUnicode_InternFromString("")) || !(s_mrna = PyUnicode_InternFromString("mRNA")) ||
        !(s_cds_src = PyUnicode_InternFromString("CDS")) ||
        !(s_feature = PyUnicode_InternFromString("feature")) ||
        !(s_match = PyUnicode_InternFromString("match")) ||
        !(s_mismatch = PyUnicode_InternFromString("mismatch")) ||
        !(s_translated = PyUnicode_InternFromString("translated")) ||
        !(s_none_check = PyUnicode_InternFromString("none")))
        return -1;
    for (int i = 0; i < 256; i++)
        COMPLEMENT[i] = (unsigned char)i;
    const char *from = "ACGTURYSWKMBDHVNacgturyswkmbdhvn", *to = "TGCAAYRSWMKVHDBNTGCAAYRSWMKVHDBN";
    for (int i = 0; from[i]; i++)
        COMPLEMENT[(unsigned char)from[i]] = (unsigned char)to[i];
    return 0;
}

/* ------------------------------------------------------------------ small helpers */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} buf_t;

static int buf_reserve(buf_t *b, Py_ssize_t extra)
{
    if (b->n + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(buf_t *b, const char *p, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int buf_puts(buf_t *b, const char *s) { return buf_put(b, s, (Py_ssize_t)strlen(s)); }

static int buf_revcomp(buf_t *b, const char *p, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    char *out = b->p + b->n;
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (char)COMPLEMENT[(unsigned char)p[n - 1 - i]];
    b->n += n;
    return 0;
}

/* The sequence bytes are letters only (parse.c), so a 1-byte-kind str is a plain copy. */
static PyObject *ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s)
        memcpy(PyUnicode_1BYTE_DATA(s), p, n);
    return s;
}

static PyObject *rna_str(const char *p, Py_ssize_t n) /* bytes.translate(T_TO_U) */
{
    PyObject *s = PyUnicode_New(n, 127);
    if (!s)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = p[i] == 'T' ? 'U' : (Py_UCS1)p[i];
    return s;
}

static int truthy(const gbf_qual *q) { return q->present && q->has_value && q->value.n > 0; }

static int str_eq(gbf_str a, gbf_str b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* Python's str.isspace() on a latin-1 character, as str.split() uses it. */
static int py_space(unsigned char c)
{
    return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0;
}

/* " ".join(value.split()) */
static PyObject *joined_words(gbf_str v, buf_t *tmp)
{
    tmp->n = 0;
    Py_ssize_t i = 0;
    while (i < v.n) {
        while (i < v.n && py_space((unsigned char)v.p[i]))
            i++;
        Py_ssize_t j = i;
        while (j < v.n && !py_space((unsigned char)v.p[j]))
            j++;
        if (j > i) {
            if ((tmp->n && buf_put(tmp, " ", 1) < 0) || buf_put(tmp, v.p + i, j - i) < 0)
                return NULL;
        }
        i = j;
    }
    return PyUnicode_DecodeLatin1(tmp->p, tmp->n, NULL);
}

static PyObject *qual_str(const gbf_qual *q) { return PyUnicode_DecodeLatin1(q->value.p, q->value.n, NULL); }

/* ------------------------------------------------------------------ locations (genbank.py) */

static int parts_equal(const gbf_feature *a, const gbf_feature *b)
{
    if (a->nparts != b->nparts)
        return 0;
    for (int i = 0; i < a->nparts; i++) {
        const gbf_part *x = &a->parts[i], *y = &b->parts[i];
        if (x->start != y->start || x->end != y->end || x->strand != y->strand ||
            !x->before != !y->before || !x->after != !y->after)
            return 0;
    }
    return 1;
}

static int overlaps(const gbf_feature *a, const gbf_feature *b) /* _overlaps */
{
    for (int i = 0; i < a->nparts; i++)
        for (int j = 0; j < b->nparts; j++)
            if (a->parts[i].start < b->parts[j].end && b->parts[j].start < a->parts[i].end)
                return 1;
    return 0;
}

/* _extent: 1 with (lo, hi) set, 0 when the parts are not colinear on one strand. */
static int extent(const gbf_part *parts, int n, Py_ssize_t length, int circular, Py_ssize_t *lo_out,
                  Py_ssize_t *hi_out)
{
    if (n == 1) {
        *lo_out = parts[0].start;
        *hi_out = parts[0].end;
        return 1;
    }
    int strand = parts[0].strand;
    for (int i = 1; i < n; i++)
        if (parts[i].strand != strand)
            return 0;
#define G(i) (strand > 0 ? &parts[(i)] : &parts[n - 1 - (i)])
    Py_ssize_t lo = G(0)->start, hi = G(0)->end, prev = lo, shift = 0;
    int crossed = 0;
    Py_ssize_t cross_prev = 0, cross_s = 0;
    for (int i = 1; i < n; i++) {
        Py_ssize_t s = G(i)->start, e = G(i)->end;
        if (s + shift < prev) {
            if (shift || !circular)
                return 0;
            shift = length;
            crossed = 1;
            cross_prev = prev;
            cross_s = s;
        }
        prev = s + shift;
        if (s + shift < lo)
            lo = s + shift;
        if (e + shift > hi)
            hi = e + shift;
    }
    if (crossed && hi - lo > length / 2) {
        Py_ssize_t before_jump = PY_SSIZE_T_MIN;
        for (int i = 0; i < n; i++)
            if (G(i)->start <= cross_prev && G(i)->end > before_jump)
                before_jump = G(i)->end;
        if (!(before_jump == length && cross_s == 0))
            return 0;
    }
#undef G
    *lo_out = lo;
    *hi_out = hi;
    return 1;
}

static void union_span(Py_ssize_t *lo, Py_ssize_t *hi, Py_ssize_t olo, Py_ssize_t ohi, Py_ssize_t length,
                       int circular) /* _union */
{
    if (circular && !(olo < *hi && *lo < ohi)) {
        if (olo + length < *hi && *lo < ohi + length) {
            olo += length;
            ohi += length;
        } else if (olo - length < *hi && *lo < ohi - length) {
            olo -= length;
            ohi -= length;
        }
    }
    if (!(olo < *hi && *lo < ohi))
        return;
    if (olo < *lo)
        *lo = olo;
    if (ohi > *hi)
        *hi = ohi;
}

/* Python slice bounds for seq[a:b] */
static void clamp_slice(Py_ssize_t len, Py_ssize_t *a, Py_ssize_t *b)
{
    if (*a < 0)
        *a += len;
    if (*a < 0)
        *a = 0;
    if (*a > len)
        *a = len;
    if (*b < 0)
        *b += len;
    if (*b < 0)
        *b = 0;
    if (*b > len)
        *b = len;
    if (*b < *a)
        *b = *a;
}

static int region(buf_t *out, const char *seq, Py_ssize_t length, Py_ssize_t lo, Py_ssize_t hi,
                  int circular) /* _region */
{
    if (0 <= lo && hi <= length)
        return buf_put(out, seq + lo, hi > lo ? hi - lo : 0);
    if (!circular) {
        Py_ssize_t a = lo > 0 ? lo : 0, b = hi < length ? hi : length;
        clamp_slice(length, &a, &b);
        return buf_put(out, seq + a, b - a);
    }
    Py_ssize_t lo_mod = ((lo % length) + length) % length, end = lo_mod + (hi - lo);
    if (end <= length) {
        Py_ssize_t a = lo_mod, b = end;
        clamp_slice(length, &a, &b);
        return buf_put(out, seq + a, b - a);
    }
    Py_ssize_t a = 0, b = end - length;
    clamp_slice(length, &a, &b);
    if (buf_put(out, seq + lo_mod, length - lo_mod) < 0)
        return -1;
    return buf_put(out, seq, b);
}

static int splice(buf_t *out, const char *seq, const gbf_feature *f) /* _splice */
{
    for (int i = 0; i < f->nparts; i++) {
        const gbf_part *p = &f->parts[i];
        int rc = p->strand > 0 ? buf_put(out, seq + p->start, p->end - p->start)
                               : buf_revcomp(out, seq + p->start, p->end - p->start);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int format_one(buf_t *b, const gbf_part *p)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s%zd", p->before ? "<" : "", p->start + 1);
    if (buf_puts(b, tmp) < 0)
        return -1;
    if (p->end - p->start != 1 || p->after) {
        snprintf(tmp, sizeof tmp, "..%s%zd", p->after ? ">" : "", p->end);
        if (buf_puts(b, tmp) < 0)
            return -1;
    }
    return 0;
}

static PyObject *format_location(const gbf_feature *f, buf_t *b) /* format_location */
{
    b->n = 0;
    if (f->nparts == 1) {
        const gbf_part *p = &f->parts[0];
        int neg = p->strand < 0;
        if (neg && buf_puts(b, "complement(") < 0)
            return NULL;
        if (!(p->before || p->after) && p->end - p->start > 1) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%zd..%zd", p->start + 1, p->end);
            if (buf_puts(b, tmp) < 0)
                return NULL;
        } else if (format_one(b, p) < 0)
            return NULL;
        if (neg && buf_puts(b, ")") < 0)
            return NULL;
        return PyUnicode_DecodeLatin1(b->p, b->n, NULL);
    }
    const char *op = f->is_order ? "order(" : "join(";
    int all_minus = 1;
    for (int i = 0; i < f->nparts; i++)
        if (f->parts[i].strand >= 0)
            all_minus = 0;
    if (all_minus) {
        if (buf_puts(b, "complement(") < 0 || buf_puts(b, op) < 0)
            return NULL;
        for (int i = f->nparts - 1; i >= 0; i--)
            if ((i != f->nparts - 1 && buf_puts(b, ",") < 0) || format_one(b, &f->parts[i]) < 0)
                return NULL;
        if (buf_puts(b, "))") < 0)
            return NULL;
    } else {
        if (buf_puts(b, op) < 0)
            return NULL;
        for (int i = 0; i < f->nparts; i++) {
            const gbf_part *p = &f->parts[i];
            if (i && buf_puts(b, ",") < 0)
                return NULL;
            if (p->strand > 0) {
                if (format_one(b, p) < 0)
                    return NULL;
            } else if (buf_puts(b, "complement(") < 0 || format_one(b, p) < 0 || buf_puts(b, ")") < 0)
                return NULL;
        }
        if (buf_puts(b, ")") < 0)
            return NULL;
    }
    return PyUnicode_DecodeLatin1(b->p, b->n, NULL);
}

typedef struct {
    Py_ssize_t s, e;
} ival;

static int ival_cmp(const void *a, const void *b)
{
    const ival *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->e < y->e ? -1 : x->e > y->e;
}

/* _mrna_consistent: inside the CDS extent, the mRNA exons are exactly the merged CDS parts. */
static int mrna_consistent(const gbf_feature *cds, const gbf_feature *mrna)
{
    int n = cds->nparts, m = mrna->nparts, ok = 0;
    ival *merged = PyMem_Malloc(sizeof(ival) * (n + m + 1));
    if (!merged)
        return -1;
    ival *clipped = merged + n;
    for (int i = 0; i < n; i++)
        merged[i] = (ival){cds->parts[i].start, cds->parts[i].end};
    qsort(merged, n, sizeof(ival), ival_cmp);
    int k = 1;
    for (int i = 1; i < n; i++) {
        if (merged[i].s <= merged[k - 1].e) {
            if (merged[i].e > merged[k - 1].e)
                merged[k - 1].e = merged[i].e;
        } else
            merged[k++] = merged[i];
    }
    Py_ssize_t lo = merged[0].s, hi = merged[k - 1].e;
    int c = 0;
    for (int i = 0; i < m; i++) {
        Py_ssize_t s = mrna->parts[i].start, e = mrna->parts[i].end;
        if (s < hi && lo < e)
            clipped[c++] = (ival){s > lo ? s : lo, e < hi ? e : hi};
    }
    qsort(clipped, c, sizeof(ival), ival_cmp);
    if (c == k) {
        ok = 1;
        for (int i = 0; i < k; i++)
            if (clipped[i].s != merged[i].s || clipped[i].e != merged[i].e)
                ok = 0;
    }
    PyMem_Free(merged);
    return ok;
}

/* ------------------------------------------------------------------ lookups (_lookup) */

/* Chained hash of (kind, string) -> features in file order; one table for /locus_tag, one for /gene. */
typedef struct {
    int *head, *tail, *next; /* bucket heads/tails and per-feature links; -1 ends a chain */
    Py_ssize_t mask;
} index_t;

static Py_uhash_t hash_str(int kind, gbf_str s)
{
    Py_uhash_t h = 1469598103934665603ULL ^ (Py_uhash_t)kind;
    for (Py_ssize_t i = 0; i < s.n; i++)
        h = (h ^ (unsigned char)s.p[i]) * 1099511628211ULL;
    return h;
}

static int index_build(index_t *ix, const gbf_record *rec, int qual)
{
    Py_ssize_t size = 16;
    while (size < 2 * (Py_ssize_t)rec->nfeatures)
        size *= 2;
    ix->mask = size - 1;
    ix->head = PyMem_Malloc(sizeof(int) * (2 * size + rec->nfeatures + 1));
    if (!ix->head) {
        PyErr_NoMemory();
        return -1;
    }
    ix->tail = ix->head + size;
    ix->next = ix->tail + size;
    for (Py_ssize_t i = 0; i < size; i++)
        ix->head[i] = ix->tail[i] = -1;
    for (int i = 0; i < rec->nfeatures; i++) {
        const gbf_feature *f = &rec->features[i];
        ix->next[i] = -1;
        if (f->kind == GBF_KIND_RNA || !truthy(&f->q[qual]))
            continue;
        Py_ssize_t b = hash_str(f->kind, f->q[qual].value) & ix->mask;
        if (ix->tail[b] < 0)
            ix->head[b] = i;
        else
            ix->next[ix->tail[b]] = i;
        ix->tail[b] = i;
    }
    return 0;
}

/* Features of `kind` found by _lookup(by_tag, by_name, f) that overlap f (_matching), in file
 * order, into out; returns how many. */
static int lookup(const gbf_record *rec, const index_t *tags, const index_t *names, int kind,
                  const gbf_feature *f, int *out)
{
    int n = 0;
    const gbf_qual *tag = &f->q[GBF_Q_LOCUS_TAG], *name = &f->q[GBF_Q_GENE];
    int has_tag = truthy(tag);
    if (has_tag) {
        int any = 0; /* a feature with this tag exists: the name is not consulted */
        for (int i = tags->head[hash_str(kind, tag->value) & tags->mask]; i >= 0; i = tags->next[i]) {
            const gbf_feature *g = &rec->features[i];
            if (g->kind == kind && str_eq(g->q[GBF_Q_LOCUS_TAG].value, tag->value)) {
                any = 1;
                if (overlaps(f, g))
                    out[n++] = i;
            }
        }
        if (any)
            return n;
    }
    if (truthy(name)) {
        for (int i = names->head[hash_str(kind, name->value) & names->mask]; i >= 0; i = names->next[i]) {
            const gbf_feature *g = &rec->features[i];
            if (g->kind == kind && str_eq(g->q[GBF_Q_GENE].value, name->value) &&
                (!has_tag || !truthy(&g->q[GBF_Q_LOCUS_TAG])) && overlaps(f, g))
                out[n++] = i;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ translation */

typedef struct {
    const unsigned char *lookup; /* 4096: c1 << 8 | c2 << 4 | c3 (byte classes) -> amino acid */
    const char *starts;          /* start codons, 3 bytes each */
    Py_ssize_t nstarts;
} table_t;

static const unsigned char *byte_class; /* 256 bytes: genetic_code.BYTE_CLASS */

/* tables: (byte_class bytes, {table_id: (lookup bytes, starts bytes)}) */
static int get_table(PyObject *tables, long id, table_t *t)
{
    PyObject *classes = PyTuple_GET_ITEM(tables, 0), *by_id = PyTuple_GET_ITEM(tables, 1);
    byte_class = (const unsigned char *)PyBytes_AS_STRING(classes);
    PyObject *key = PyLong_FromLong(id);
    if (!key)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(by_id, key);
    Py_DECREF(key);
    if (!entry)
        return PyErr_Occurred() ? -1 : 0;
    t->lookup = (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(entry, 0));
    t->starts = PyBytes_AS_STRING(PyTuple_GET_ITEM(entry, 1));
    t->nstarts = PyBytes_GET_SIZE(PyTuple_GET_ITEM(entry, 1)) / 3;
    return 1;
}

/* translate_many on one frame + the alternative-start rule + the dropped terminal stop. */
static int translate(buf_t *out, const char *nt, Py_ssize_t n, int codon_start, int partial_5,
                     const table_t *t, int *alt_start)
{
    out->n = 0;
    const char *s = nt;
    Py_ssize_t len = n;
    if (codon_start > 1) {
        Py_ssize_t skip = codon_start - 1 < n ? codon_start - 1 : n;
        s += skip;
        len -= skip;
    }
    Py_ssize_t codons = (len + 2) / 3;
    if (buf_reserve(out, codons + 1) < 0)
        return -1;
    unsigned char *o = (unsigned char *)out->p;
    Py_ssize_t full = len / 3;
    for (Py_ssize_t i = 0; i < full; i++) {
        const unsigned char *c = (const unsigned char *)s + 3 * i;
        o[i] = t->lookup[(byte_class[c[0]] << 8) | (byte_class[c[1]] << 4) | byte_class[c[2]]];
    }
    out->n = full;
    if (len % 3) { /* padded with N; kept only when still unambiguous */
        const unsigned char *c = (const unsigned char *)s + 3 * full;
        unsigned char k[3] = {byte_class['N'], byte_class['N'], byte_class['N']};
        for (Py_ssize_t j = 0; j < len % 3; j++)
            k[j] = byte_class[c[j]];
        unsigned char aa = t->lookup[(k[0] << 8) | (k[1] << 4) | k[2]];
        if (aa != 'X')
            o[out->n++] = aa;
    }
    *alt_start = 0;
    if (codon_start == 1 && !partial_5 && out->n > 0 && o[0] != 'M' && n >= 3) {
        for (Py_ssize_t j = 0; j < t->nstarts; j++)
            if (memcmp(nt, t->starts + 3 * j, 3) == 0) {
                o[0] = 'M';
                *alt_start = 1;
                break;
            }
    }
    if (out->n > 0 && o[out->n - 1] == '*')
        out->n--;
    return 0;
}

/* ------------------------------------------------------------------ the record */

typedef struct {
    const gbf_feature *f, *gene, *mrna;
    Py_ssize_t dna_off, dna_len, nt_off, nt_len; /* into the work buffer; dna_len < 0: no dna */
    int strand, partial_5, partial_3, flank_5, flank_3, codon_start, table;
    Py_ssize_t row; /* its place in the rows list */
} pending_t;

typedef struct {
    const gbf_record *rec;
    int flank;
    Py_ssize_t notes[N_NOTES];
    buf_t work, tmp, prot;
} ctx_t;

static int sequences(ctx_t *c, pending_t *p) /* _Extractor.sequences */
{
    const gbf_record *rec = c->rec;
    const gbf_feature *f = p->f;
    Py_ssize_t length = rec->length, lo, hi;
    p->dna_len = -1;
    p->flank_5 = p->flank_3 = 0;
    if (!extent(f->parts, f->nparts, length, rec->circular, &lo, &hi)) {
        p->nt_off = c->work.n;
        if (splice(&c->work, rec->seq, f) < 0)
            return -1;
        p->nt_len = c->work.n - p->nt_off;
        return 0;
    }
    const gbf_feature *others[2] = {p->gene, p->mrna};
    for (int i = 0; i < 2; i++) {
        const gbf_feature *o = others[i];
        Py_ssize_t olo, ohi;
        if (o && !parts_equal(o, f) && extent(o->parts, o->nparts, length, rec->circular, &olo, &ohi))
            union_span(&lo, &hi, olo, ohi, length, rec->circular);
    }
    Py_ssize_t left, right, flank = c->flank;
    if (rec->circular) { /* _circular_flanks */
        Py_ssize_t room = length - (hi - lo);
        if (room < 0)
            room = 0;
        if (2 * flank <= room)
            left = right = flank;
        else {
            left = flank < room / 2 ? flank : room / 2;
            right = flank < room - left ? flank : room - left;
        }
    } else {
        left = flank < lo ? flank : lo;
        right = flank < length - hi ? flank : length - hi;
    }
    if (left < flank || right < flank)
        c->notes[N_FLANK_CLIPPED]++;
    p->dna_off = c->work.n;
    if (region(&c->work, rec->seq, length, lo - left, hi + right, rec->circular) < 0)
        return -1;
    p->dna_len = c->work.n - p->dna_off;
    if (p->strand > 0) {
        p->flank_5 = (int)left;
        p->flank_3 = (int)right;
    } else {
        char *d = c->work.p + p->dna_off;
        for (Py_ssize_t i = 0, j = p->dna_len - 1; i < j; i++, j--) {
            char t = d[i];
            d[i] = d[j];
            d[j] = t;
        }
        for (Py_ssize_t i = 0; i < p->dna_len; i++)
            d[i] = (char)COMPLEMENT[(unsigned char)d[i]];
        p->flank_5 = (int)right;
        p->flank_3 = (int)left;
    }
    if (f->nparts == 1) { /* a slice of the oriented span */
        Py_ssize_t s = f->parts[0].start, e = f->parts[0].end;
        Py_ssize_t start = p->flank_5 + (p->strand > 0 ? s - lo : hi - e), stop = start + e - s;
        clamp_slice(p->dna_len, &start, &stop);
        p->nt_off = p->dna_off + start;
        p->nt_len = stop - start;
    } else {
        p->nt_off = c->work.n;
        if (splice(&c->work, rec->seq, f) < 0)
            return -1;
        p->nt_len = c->work.n - p->nt_off;
    }
    return 0;
}

static PyObject *item_id(const gbf_feature *f) /* _Extractor.reject's item_id */
{
    if (truthy(&f->q[GBF_Q_LOCUS_TAG]))
        return qual_str(&f->q[GBF_Q_LOCUS_TAG]);
    if (truthy(&f->q[GBF_Q_PROTEIN_ID]))
        return qual_str(&f->q[GBF_Q_PROTEIN_ID]);
    if (truthy(&f->q[GBF_Q_GENE]))
        return qual_str(&f->q[GBF_Q_GENE]);
    PyObject *kind = PyUnicode_DecodeLatin1(f->kind_name.p, f->kind_name.n, NULL);
    PyObject *id = kind ? PyUnicode_FromFormat("%U#%d", kind, f->index) : NULL;
    Py_XDECREF(kind);
    return id;
}

static PyObject *reject_row(ctx_t *c, const gbf_feature *f, const char *reason, const char *fmt)
{
    PyObject *loc = format_location(f, &c->tmp);
    PyObject *kind = PyUnicode_DecodeLatin1(f->kind_name.p, f->kind_name.n, NULL);
    PyObject *detail = loc && kind ? PyUnicode_FromFormat(fmt, kind, loc, (Py_ssize_t)c->rec->length) : NULL;
    PyObject *id = detail ? item_id(f) : NULL;
    PyObject *row = id ? Py_BuildValue("(sOO)", reason, detail, id) : NULL;
    Py_XDECREF(loc);
    Py_XDECREF(kind);
    Py_XDECREF(detail);
    Py_XDECREF(id);
    return row;
}

/* _Extractor.check: a reject row, Py_None for a gene to extract, NULL on error. */
static PyObject *check(ctx_t *c, const gbf_feature *f, const gbf_feature *gene_feats[], int ngenes)
{
    if (f->q[GBF_Q_PSEUDO].present || f->q[GBF_Q_PSEUDOGENE].present)
        return reject_row(c, f, "pseudo", "/pseudo on %U %U");
    for (int i = 0; i < ngenes; i++)
        if (gene_feats[i]->q[GBF_Q_PSEUDO].present || gene_feats[i]->q[GBF_Q_PSEUDOGENE].present)
            return reject_row(c, f, "pseudo", "/pseudo on the gene of %U %U");
    for (int i = 0; i < f->nparts; i++) {
        const gbf_part *p = &f->parts[i];
        if (!(0 <= p->start && p->start < p->end && p->end <= c->rec->length))
            return reject_row(c, f, p->start < p->end ? "location_out_of_bounds" : "invalid_location",
                              "%U %U outside 1..%zd");
    }
    Py_RETURN_NONE;
}

/* (protein, translation_check) of _Extractor.protein; own is the translated protein. */
static int protein(ctx_t *c, const gbf_feature *f, PyObject **prot, PyObject **check_out)
{
    const gbf_qual *given = &f->q[GBF_Q_TRANSLATION];
    const char *own = c->prot.p;
    Py_ssize_t own_n = c->prot.n;
    if (truthy(given)) {
        /* "".join(given.split()) when it holds a space or newline; gb-io already dropped the
           newlines of a multi-line value, so the multi-line raw text loses all whitespace */
        gbf_str v = given->value;
        int strip = given->multiline || memchr(v.p, ' ', v.n) || memchr(v.p, '\n', v.n);
        if (strip) {
            c->tmp.n = 0;
            for (Py_ssize_t i = 0; i < v.n; i++)
                if (!py_space((unsigned char)v.p[i]) && buf_put(&c->tmp, v.p + i, 1) < 0)
                    return -1;
            v = (gbf_str){c->tmp.p, c->tmp.n};
        }
        if (v.n == 0) /* only whitespace: falsy after normalising */
            goto own_only;
        *prot = PyUnicode_DecodeLatin1(v.p, v.n, NULL);
        if (v.n == own_n && memcmp(v.p, own, own_n) == 0)
            *check_out = Py_NewRef(s_match);
        else {
            c->notes[N_TRANSLATION_MISMATCH]++;
            *check_out = Py_NewRef(s_mismatch);
        }
        return *prot ? 0 : -1;
    }
own_only:
    c->notes[N_TRANSLATED]++;
    if (memchr(own, '*', own_n))
        c->notes[N_INTERNAL_STOP]++;
    *prot = ascii_str(own, own_n);
    *check_out = Py_NewRef(s_translated);
    return *prot ? 0 : -1;
}

static int set_attr(PyObject *d, int key, PyObject *value) /* steals value */
{
    if (!value)
        return -1;
    int rc = PyDict_SetItem(d, attr_keys[key], value);
    Py_DECREF(value);
    return rc;
}

/* the first truthy of a.q[k], b.q[k] as str, else "" */
static PyObject *first_of(const gbf_feature *a, const gbf_feature *b, int k)
{
    if (truthy(&a->q[k]))
        return qual_str(&a->q[k]);
    if (b && truthy(&b->q[k]))
        return qual_str(&b->q[k]);
    return Py_NewRef(s_empty);
}

static PyObject *base_key(const gbf_feature *f) /* _assign_keys' first choice of key */
{
    if (truthy(&f->q[GBF_Q_LOCUS_TAG]))
        return qual_str(&f->q[GBF_Q_LOCUS_TAG]);
    if (truthy(&f->q[GBF_Q_PROTEIN_ID]))
        return qual_str(&f->q[GBF_Q_PROTEIN_ID]);
    Py_ssize_t lo = f->parts[0].start;
    for (int i = 1; i < f->nparts; i++)
        if (f->parts[i].start < lo)
            lo = f->parts[i].start;
    const gbf_str name = truthy(&f->q[GBF_Q_GENE]) ? f->q[GBF_Q_GENE].value : f->kind_name;
    PyObject *prefix = PyUnicode_DecodeLatin1(name.p, name.n, NULL);
    if (!prefix)
        return NULL;
    PyObject *key = PyUnicode_FromFormat("%U_%zd", prefix, lo + 1);
    Py_DECREF(prefix);
    return key;
}

/* _Extractor.finish: the gene row. */
static PyObject *finish(ctx_t *c, pending_t *p)
{
    const gbf_feature *f = p->f, *mrna = p->mrna, *gq = p->gene ? p->gene : p->f;
    const char *work = c->work.p;
    int is_cds = f->kind == GBF_KIND_CDS;
    PyObject *prot = NULL, *check_val = NULL, *cds = NULL, *rna = NULL, *dna = NULL, *attrs = NULL,
             *row = NULL, *rna_source;
    if (is_cds) {
        if (protein(c, f, &prot, &check_val) < 0)
            goto fail;
        if (!(cds = ascii_str(work + p->nt_off, p->nt_len)))
            goto fail;
        if (mrna) {
            Py_ssize_t off = c->work.n;
            if (splice(&c->work, c->rec->seq, mrna) < 0)
                goto fail;
            work = c->work.p;
            rna = rna_str(work + off, c->work.n - off);
            c->work.n = off;
            rna_source = s_mrna;
            c->notes[N_RNA_FROM_MRNA]++;
        } else {
            rna = rna_str(work + p->nt_off, p->nt_len);
            rna_source = s_cds_src;
            c->notes[N_RNA_FROM_CDS]++;
        }
    } else {
        prot = Py_NewRef(Py_None);
        cds = Py_NewRef(Py_None);
        check_val = Py_NewRef(s_none_check);
        rna = rna_str(work + p->nt_off, p->nt_len);
        rna_source = s_feature;
        c->notes[N_RNA_FROM_FEATURE]++;
    }
    if (!rna)
        goto fail;
    dna = p->dna_len >= 0 ? ascii_str(work + p->dna_off, p->dna_len) : Py_NewRef(Py_None);
    if (!dna || !(attrs = PyDict_New()))
        goto fail;

    const gbf_qual *product = &f->q[GBF_Q_PRODUCT];
    PyObject *product_val = !truthy(product) ? Py_NewRef(s_empty)
                            : product->multiline ? joined_words(product->value, &c->tmp)
                                                 : qual_str(product);
    PyObject *transcript = mrna && truthy(&mrna->q[GBF_Q_TRANSCRIPT_ID]) ? qual_str(&mrna->q[GBF_Q_TRANSCRIPT_ID])
                                                                          : first_of(f, NULL, GBF_Q_TRANSCRIPT_ID);
    if (set_attr(attrs, A_GENE, first_of(f, gq, GBF_Q_GENE)) < 0 ||
        set_attr(attrs, A_LOCUS_TAG, first_of(f, gq, GBF_Q_LOCUS_TAG)) < 0 ||
        set_attr(attrs, A_PROTEIN_ID, first_of(f, NULL, GBF_Q_PROTEIN_ID)) < 0 ||
        set_attr(attrs, A_TRANSCRIPT_ID, transcript) < 0 ||
        set_attr(attrs, A_GENE_ID, first_of(f, gq, GBF_Q_GENE_ID)) < 0 ||
        set_attr(attrs, A_PRODUCT, product_val) < 0 ||
        set_attr(attrs, A_TRANSL_TABLE, PyLong_FromLong(p->table)) < 0 ||
        set_attr(attrs, A_CODON_START, PyLong_FromLong(p->codon_start)) < 0 ||
        set_attr(attrs, A_PARTIAL_5, PyBool_FromLong(p->partial_5)) < 0 ||
        set_attr(attrs, A_PARTIAL_3, PyBool_FromLong(p->partial_3)) < 0 ||
        set_attr(attrs, A_LOCATION, format_location(f, &c->tmp)) < 0 ||
        set_attr(attrs, A_STRAND, PyLong_FromLong(p->strand)) < 0 ||
        set_attr(attrs, A_FLANK_5, PyLong_FromLong(p->flank_5)) < 0 ||
        set_attr(attrs, A_FLANK_3, PyLong_FromLong(p->flank_3)) < 0 ||
        set_attr(attrs, A_RNA_SOURCE, Py_NewRef(rna_source)) < 0 ||
        set_attr(attrs, A_TRANSLATION_CHECK, Py_NewRef(check_val)) < 0)
        goto fail;
    if (p->partial_5)
        c->notes[N_PARTIAL_5]++;
    if (p->partial_3)
        c->notes[N_PARTIAL_3]++;
    if (f->is_order && f->nparts > 1)
        c->notes[N_ORDER_LOCATION]++;
    if (p->dna_len < 0 || f->q[GBF_Q_TRANS_SPLICING].present) {
        if (set_attr(attrs, A_TRANS_SPLICED, Py_NewRef(Py_True)) < 0)
            goto fail;
        c->notes[N_TRANS_SPLICED]++;
        if (p->dna_len < 0)
            c->notes[N_NONCOLINEAR_NO_DNA]++;
    }
    if (mrna && set_attr(attrs, A_MRNA_LOCATION, format_location(mrna, &c->tmp)) < 0)
        goto fail;
    if (f->q[GBF_Q_EXCEPTION].present &&
        set_attr(attrs, A_EXCEPTION, truthy(&f->q[GBF_Q_EXCEPTION]) ? qual_str(&f->q[GBF_Q_EXCEPTION])
                                                                    : Py_NewRef(s_empty)) < 0)
        goto fail;
    if (f->q[GBF_Q_RIBOSOMAL_SLIPPAGE].present && set_attr(attrs, A_RIBOSOMAL_SLIPPAGE, Py_NewRef(Py_True)) < 0)
        goto fail;
    {
        PyObject *key = base_key(f);
        PyObject *pid = truthy(&f->q[GBF_Q_PROTEIN_ID]) ? qual_str(&f->q[GBF_Q_PROTEIN_ID]) : Py_NewRef(Py_None);
        PyObject *kind = PyUnicode_DecodeLatin1(f->kind_name.p, f->kind_name.n, NULL);
        if (key && pid && kind)
            row = PyTuple_Pack(8, key, pid, kind, dna, rna, prot, cds, attrs);
        Py_XDECREF(key);
        Py_XDECREF(pid);
        Py_XDECREF(kind);
    }
fail:
    Py_XDECREF(prot);
    Py_XDECREF(check_val);
    Py_XDECREF(cds);
    Py_XDECREF(rna);
    Py_XDECREF(dna);
    Py_XDECREF(attrs);
    return row;
}

/* 1 and *out set for plain digits (what int() reads the same way), 0 otherwise. */
static int plain_int(const gbf_qual *q, long *out)
{
    if (q->value.n == 0 || q->value.n > 6 || q->multiline)
        return 0;
    long v = 0;
    for (Py_ssize_t i = 0; i < q->value.n; i++) {
        char ch = q->value.p[i];
        if (ch < '0' || ch > '9')
            return 0;
        v = v * 10 + (ch - '0');
    }
    *out = v;
    return 1;
}

PyObject *gbf_extract_record(const gbf_record *rec, int flank, PyObject *tables)
{
    ctx_t c = {.rec = rec, .flank = flank};
    index_t tags = {0}, names = {0};
    int nf = rec->nfeatures, nanchors = 0, npending = 0;
    int *anchors = NULL, *found = NULL;
    pending_t *pending = NULL;
    PyObject *rows = NULL, *result = NULL, *notes = NULL;

    /* the genetic code of every CDS first: one this file cannot read sends the record back */
    for (int i = 0; i < nf; i++) {
        const gbf_feature *f = &rec->features[i];
        if (f->kind != GBF_KIND_CDS || !f->q[GBF_Q_TRANSL_TABLE].present || !f->q[GBF_Q_TRANSL_TABLE].has_value)
            continue;
        long id;
        table_t t;
        if (!plain_int(&f->q[GBF_Q_TRANSL_TABLE], &id))
            Py_RETURN_NONE;
        int rc = get_table(tables, id, &t);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            Py_RETURN_NONE; /* unknown_transl_table: the Python path notes it */
    }
    anchors = PyMem_Malloc(sizeof(int) * (2 * nf + 1));
    pending = PyMem_Malloc(sizeof(pending_t) * (nf + 1));
    if (!anchors || !pending) {
        PyErr_NoMemory();
        goto done;
    }
    found = anchors + nf;
    if (index_build(&tags, rec, GBF_Q_LOCUS_TAG) < 0 || index_build(&names, rec, GBF_Q_GENE) < 0)
        goto done;
    int has_mrna = 0;
    for (int i = 0; i < nf; i++) {
        const gbf_feature *f = &rec->features[i];
        if (f->kind == GBF_KIND_MRNA && (truthy(&f->q[GBF_Q_LOCUS_TAG]) || truthy(&f->q[GBF_Q_GENE])))
            has_mrna = 1;
        if (f->kind == GBF_KIND_CDS)
            anchors[nanchors++] = i;
        else if (f->kind == GBF_KIND_RNA) { /* in file order, so anchors stay sorted by index */
            if (lookup(rec, &tags, &names, GBF_KIND_CDS, f, found) > 0)
                c.notes[N_RNA_FEATURE_WITH_CDS]++;
            else
                anchors[nanchors++] = i;
        }
    }
    if (!(rows = PyList_New(0)))
        goto done;
    const gbf_feature **gene_feats = (const gbf_feature **)PyMem_Malloc(sizeof(void *) * (nf + 1));
    if (!gene_feats) {
        PyErr_NoMemory();
        goto done;
    }
    for (int a = 0; a < nanchors; a++) {
        const gbf_feature *f = &rec->features[anchors[a]];
        int ng = lookup(rec, &tags, &names, GBF_KIND_GENE, f, found);
        for (int i = 0; i < ng; i++)
            gene_feats[i] = &rec->features[found[i]];
        PyObject *rejected = check(&c, f, gene_feats, ng);
        if (!rejected)
            goto done_genes;
        if (rejected != Py_None) {
            int rc = PyList_Append(rows, rejected);
            Py_DECREF(rejected);
            if (rc < 0)
                goto done_genes;
            continue;
        }
        Py_DECREF(rejected);
        pending_t *p = &pending[npending];
        memset(p, 0, sizeof *p);
        p->f = f;
        p->gene = ng ? gene_feats[0] : NULL;
        const gbf_part *first = &f->parts[0], *last = &f->parts[f->nparts - 1];
        p->strand = first->strand;
        p->partial_5 = first->strand > 0 ? first->before : first->after;
        p->partial_3 = last->strand > 0 ? last->after : last->before;
        p->partial_5 = !!p->partial_5;
        p->partial_3 = !!p->partial_3;
        if (has_mrna && f->kind == GBF_KIND_CDS) { /* choose_mrna */
            int nm = lookup(rec, &tags, &names, GBF_KIND_MRNA, f, found);
            for (int i = 0; i < nm && !p->mrna; i++) {
                const gbf_feature *m = &rec->features[found[i]];
                int ok = 1;
                for (int j = 0; j < m->nparts; j++)
                    if (!(0 <= m->parts[j].start && m->parts[j].start < m->parts[j].end &&
                          m->parts[j].end <= rec->length))
                        ok = 0;
                ok = ok ? mrna_consistent(f, m) : 0;
                if (ok < 0) {
                    PyErr_NoMemory();
                    goto done_genes;
                }
                if (ok)
                    p->mrna = &rec->features[found[i]];
            }
            if (nm && !p->mrna)
                c.notes[N_MRNA_INCONSISTENT]++;
        }
        if (sequences(&c, p) < 0)
            goto done_genes;
        p->row = PyList_GET_SIZE(rows); /* filled in by finish() below */
        if (PyList_Append(rows, Py_None) < 0)
            goto done_genes;
        npending++;
    }
    /* _Extractor.translate's codon_start and table, then each gene's protein and row */
    for (int i = 0; i < npending; i++) {
        pending_t *p = &pending[i];
        if (p->f->kind != GBF_KIND_CDS)
            continue;
        const gbf_qual *cs = &p->f->q[GBF_Q_CODON_START];
        p->codon_start = 1;
        if (cs->present && cs->has_value) {
            if (cs->value.n == 1 && cs->value.p[0] >= '1' && cs->value.p[0] <= '3')
                p->codon_start = cs->value.p[0] - '0';
            else
                c.notes[N_BAD_CODON_START]++;
        }
        long id = 1;
        if (p->f->q[GBF_Q_TRANSL_TABLE].present && p->f->q[GBF_Q_TRANSL_TABLE].has_value)
            plain_int(&p->f->q[GBF_Q_TRANSL_TABLE], &id); /* checked on entry */
        p->table = (int)id;
    }
    for (int i = 0; i < npending; i++) {
        pending_t *p = &pending[i];
        if (p->f->kind == GBF_KIND_CDS) {
            table_t t;
            int rc = get_table(tables, p->table, &t);
            if (rc <= 0)
                goto done_genes; /* checked above; rc < 0 is an error */
            int alt;
            if (translate(&c.prot, c.work.p + p->nt_off, p->nt_len, p->codon_start, p->partial_5, &t, &alt) < 0)
                goto done_genes;
            if (alt)
                c.notes[N_ALTERNATIVE_START]++;
        }
        PyObject *row = finish(&c, p);
        if (!row)
            goto done_genes;
        if (PyList_SetItem(rows, p->row, row) < 0) /* drops the None placeholder */
            goto done_genes;
    }
    if (!(notes = PyDict_New()))
        goto done_genes;
    for (int k = 0; k < N_NOTES; k++) {
        if (!c.notes[k])
            continue;
        PyObject *v = PyLong_FromSsize_t(c.notes[k]);
        if (!v || PyDict_SetItem(notes, note_keys[k], v) < 0) {
            Py_XDECREF(v);
            goto done_genes;
        }
        Py_DECREF(v);
    }
    result = Py_BuildValue("(NOOii)", PyUnicode_DecodeLatin1(rec->id.p, rec->id.n, NULL), rows, notes,
                           nanchors, npending);
done_genes:
    PyMem_Free(gene_feats);
done:
    Py_XDECREF(rows);
    Py_XDECREF(notes);
    PyMem_Free(anchors);
    PyMem_Free(pending);
    PyMem_Free(tags.head);
    PyMem_Free(names.head);
    PyMem_Free(c.work.p);
    PyMem_Free(c.tmp.p);
    PyMem_Free(c.prot.p);
    return result;
}
