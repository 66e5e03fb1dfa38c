/* One gene -> pair samples: the compiled twin of the common path of bsm_data.pairing.pair_gene.
 *
 * pair_common(gene, ctx, seed, seq_len, min_slice, source, Sample) returns None whenever the
 * gene leaves the common path (a modality that normalize() would reject or that is not a plain
 * ASCII str, fewer than two modalities, no windowable combination, arguments out of range, a
 * Sample class it cannot fill); pair_gene then runs its Python code, which stays the
 * reference. Otherwise it returns
 *     (samples, n_present, normalized_notes, pair_notes)
 * and pair_gene counts them; the note tuples are ready-made ones from ctx. ctx is
 * pairing.compiled_context(vocab): (letter tables: tuple of 3 bytes in MODALITIES order,
 * ambiguous letters: bytes of 3, max_ambiguous_fraction, pair notes: 24 tuples indexed by
 * combo mask * 3 + (0 one window, 1 windowed, 2 windowed with a grown tail), normalized notes:
 * 8 tuples indexed by the mask of changed modalities); masks are dna=1 rna=2 protein=4.
 */
#include "gbfast.h"
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define NMOD 3 /* MODALITIES = ("dna", "rna", "protein") */

static PyObject *s_modality[NMOD], *s_group_id, *s_source_file, *s_record_id;
static PyObject *s_fields[9]; /* Sample's fields, in declaration order */
static const char *FIELD_NAMES[9] = {
    "sample_id", "source", "group_id", "window", "n_windows", "segments", "n_tokens",
    "source_file", "record_id",
};

int gbf_pair_init(PyObject *module)
{
    static const char *names[NMOD] = {"dna", "rna", "protein"};
    for (int m = 0; m < NMOD; m++)
        if (!(s_modality[m] = PyUnicode_InternFromString(names[m])))
            return -1;
    for (int i = 0; i < 9; i++)
        if (!(s_fields[i] = PyUnicode_InternFromString(FIELD_NAMES[i])))
            return -1;
    if (!(s_group_id = PyUnicode_InternFromString("group_id")) ||
        !(s_source_file = PyUnicode_InternFromString("source_file")) ||
        !(s_record_id = PyUnicode_InternFromString("record_id")))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ sha256 (FIPS 180-4) */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* sha256(msg) into out[32]. */
static void sha256(const unsigned char *msg, size_t n, unsigned char out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char block[64];
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha256_block(h, msg + i);
    size_t rest = n - i;
    memcpy(block, msg + i, rest);
    block[rest++] = 0x80;
    if (rest > 56) {
        memset(block + rest, 0, 64 - rest);
        sha256_block(h, block);
        rest = 0;
    }
    memset(block + rest, 0, 56 - rest);
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        block[56 + k] = (unsigned char)(bits >> (56 - 8 * k));
    sha256_block(h, block);
    for (int k = 0; k < 32; k++)
        out[k] = (unsigned char)(h[k / 4] >> (24 - 8 * (k % 4)));
}

/* ------------------------------------------------------------------ draws */

/* pairing.draw_below: the slot-th 64-bit little-endian word of the digest, mod n */
static int draw_below(const unsigned char draws[32], int slot, int n)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | draws[8 * slot + k];
    return (int)(v % (uint64_t)n);
}

/* str(v) for an int: the decimal digits into out (at least 21 bytes), returns their count. */
static int format_int(char *out, long long v)
{
    char tmp[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

/* pairing.pair_draws(seed, key): sha256(f"{seed}\x1f{key}") */
static int pair_draws(unsigned char out[32], long long seed, const char *key, Py_ssize_t keylen)
{
    unsigned char small[256];
    unsigned char *msg = small;
    size_t need = 32 + (size_t)keylen;
    if (need > sizeof small && !(msg = PyMem_Malloc(need))) {
        PyErr_NoMemory();
        return -1;
    }
    int n = format_int((char *)msg, seed);
    msg[n++] = 0x1f;
    memcpy(msg + n, key, (size_t)keylen);
    sha256(msg, (size_t)n + (size_t)keylen, out);
    if (msg != small)
        PyMem_Free(msg);
    return 0;
}

/* ------------------------------------------------------------------ windows */

/* vocab.sample_overhead */
static long long overhead_of(int k) { return 2 + k + (k - 1); }

/* pairing.windowable; -1 where the Python arithmetic would leave the common path (budget <= 0). */
static int windowable(const long long *len, int k, long long seq_len, long long min_slice)
{
    long long total = 0, shortest = len[0];
    for (int i = 0; i < k; i++) {
        total += len[i];
        if (len[i] < shortest)
            shortest = len[i];
    }
    long long overhead = overhead_of(k);
    if (total + overhead <= seq_len)
        return 1;
    long long budget = seq_len - overhead - k;
    if (budget <= 0)
        return -1;
    return shortest * budget / total >= min_slice;
}

#define MIN_TAIL_SLICE 8 /* pairing.MIN_TAIL_SLICE */

/* pairing.short_tail(lengths, seq_len) with its default min_slice; budget > 0. */
static int short_tail(long long total, long long shortest, long long budget)
{
    long long cut = total / budget * budget;
    if (!(0 < cut && cut < total))
        return 0;
    return shortest - shortest * cut / total < MIN_TAIL_SLICE;
}

/* ------------------------------------------------------------------ pair_common */

/* bytes.translate(table) of n bytes, with the count of the ambiguous letter and the OR of the
 * output bytes; kept out of line so that the counting loop is vectorised. */
static __attribute__((noinline)) void translate(const unsigned char *restrict src, unsigned char *restrict dst,
                                                Py_ssize_t n, const unsigned char *restrict table,
                                                unsigned char ambiguous, Py_ssize_t *n_amb, unsigned char *high)
{
    for (Py_ssize_t i = 0; i < n; i++)
        dst[i] = table[src[i]];
    size_t count = 0;
    unsigned char bits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        count += dst[i] == ambiguous;
        bits |= dst[i];
    }
    *n_amb = (Py_ssize_t)count;
    *high = bits;
}

/* The letters a table leaves unchanged (table[c] == c), in a form SSE2 can test 16 bytes at a
 * time: up to 8 single letters, or a range lo..hi less up to 4 letters (protein: A-Z but J). A
 * sequence made only of these normalizes to itself (the usual case: extraction writes upper
 * case), so it needs no copy. */
typedef struct {
    unsigned char table[256]; /* the table this was derived from */
    int ok;                   /* 0: no SSE2 form, always translate */
    int n_letters;            /* > 0: letters mode, else range mode */
    unsigned char letters[8], lo, hi, excluded[4];
    int n_excluded;
} fixed_set;

static fixed_set fixed_cache[NMOD];

static const fixed_set *fixed_letters(int m, const unsigned char *table)
{
    fixed_set *f = &fixed_cache[m];
    if (memcmp(f->table, table, 256) == 0)
        return f;
    memset(f, 0, sizeof *f);
    memcpy(f->table, table, 256);
    int n = 0, lo = 256, hi = -1;
    for (int c = 1; c < 256; c++)
        if (table[c] == c) {
            if (n < 8)
                f->letters[n] = (unsigned char)c;
            n++;
            if (c < lo) lo = c;
            hi = c;
        }
    if (n == 0)
        return f;
    if (n <= 8) {
        f->n_letters = n;
        f->ok = 1;
        return f;
    }
    int nx = 0;
    for (int c = lo; c <= hi; c++)
        if (table[c] != c) {
            if (nx < 4)
                f->excluded[nx] = (unsigned char)c;
            nx++;
        }
    if (nx <= 4) {
        f->lo = (unsigned char)lo;
        f->hi = (unsigned char)hi;
        f->n_excluded = nx;
        f->ok = 1;
    }
    return f;
}

/* 1 when every byte of s is a fixed letter of table (then *n_amb counts the ambiguous letter),
 * 0 otherwise. */
static int all_fixed(const unsigned char *s, Py_ssize_t n, const unsigned char *table, const fixed_set *f,
                     unsigned char ambiguous, Py_ssize_t *n_amb)
{
    if (!f->ok)
        return 0;
    Py_ssize_t i = 0, count = 0;
#ifdef __SSE2__
    const __m128i amb = _mm_set1_epi8((char)ambiguous), zero = _mm_setzero_si128();
    const __m128i lo = _mm_set1_epi8((char)f->lo), span = _mm_set1_epi8((char)(f->hi - f->lo));
    __m128i letters[8], excluded[4];
    for (int k = 0; k < f->n_letters; k++)
        letters[k] = _mm_set1_epi8((char)f->letters[k]);
    for (int k = 0; k < f->n_excluded; k++)
        excluded[k] = _mm_set1_epi8((char)f->excluded[k]);
    while (i + 16 <= n) {
        __m128i acc = zero; /* per-byte ambiguous counts, at most 255 rounds */
        Py_ssize_t stop = i + 16 * 255 < n ? i + 16 * 255 : n;
        for (; i + 16 <= stop; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(s + i)), in;
            if (f->n_letters) {
                in = _mm_cmpeq_epi8(x, letters[0]);
                for (int k = 1; k < f->n_letters; k++)
                    in = _mm_or_si128(in, _mm_cmpeq_epi8(x, letters[k]));
            } else {
                __m128i d = _mm_sub_epi8(x, lo); /* lo <= x <= hi as unsigned d <= span */
                in = _mm_cmpeq_epi8(_mm_max_epu8(d, span), span);
                for (int k = 0; k < f->n_excluded; k++)
                    in = _mm_andnot_si128(_mm_cmpeq_epi8(x, excluded[k]), in);
            }
            if (_mm_movemask_epi8(in) != 0xffff)
                return 0;
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(x, amb));
        }
        __m128i sums = _mm_sad_epu8(acc, zero);
        count += _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
#endif
    for (; i < n; i++) {
        if (!s[i] || table[s[i]] != s[i])
            return 0;
        count += s[i] == ambiguous;
    }
    *n_amb = count;
    return 1;
}

/* normalize's letters.decode("ascii") when the letters are those of seq: seq itself (no copy),
 * except a one-letter string, which decode gives as CPython's cached one (so that samples share
 * objects, and pickle alike, as the Python path's do) */
static PyObject *same_letters(PyObject *seq)
{
    if (PyUnicode_GET_LENGTH(seq) == 1)
        return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, PyUnicode_1BYTE_DATA(seq), 1);
    return Py_NewRef(seq);
}

/* vocab.normalize's fast branch: translate an ASCII str with the letter table; NULL with no
 * exception where the Python path must decide (illegal letter, too ambiguous). */
static PyObject *normalize(PyObject *seq, int m, const unsigned char *table, unsigned char ambiguous,
                           double max_fraction, int *changed)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(seq);
    const unsigned char *restrict src = PyUnicode_1BYTE_DATA(seq);
    Py_ssize_t n_fixed_amb;
    if (all_fixed(src, n, table, fixed_letters(m, table), ambiguous, &n_fixed_amb)) {
        if ((double)n_fixed_amb > max_fraction * (double)n)
            return NULL;
        *changed = 0;
        return same_letters(seq); /* normalizes to itself */
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (!out)
        return NULL;
    unsigned char *restrict dst = PyUnicode_1BYTE_DATA(out);
    Py_ssize_t n_amb;
    unsigned char high;
    translate(src, dst, n, table, ambiguous, &n_amb, &high);
    int diff = memcmp(src, dst, (size_t)n) != 0;
    if ((high & 0x80) || memchr(dst, 0, (size_t)n) || (double)n_amb > max_fraction * (double)n) {
        Py_DECREF(out);
        return NULL;
    }
    *changed = diff != 0;
    if (!diff) {
        Py_DECREF(out);
        return same_letters(seq);
    }
    if (n == 1) { /* as decode: the cached one-letter string */
        Py_DECREF(out);
        return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, dst, 1);
    }
    return out;
}

/* A Sample with its fields set as the dataclass __init__ would, in field order (the frozen
 * __setattr__ is bypassed as dataclasses' own __init__ does with object.__setattr__). */
static PyObject *make_sample(PyTypeObject *type, PyObject *const values[9])
{
    PyObject *obj = type->tp_alloc(type, 0);
    if (!obj)
        return NULL;
    for (int i = 0; i < 9; i++)
        if (PyObject_GenericSetAttr(obj, s_fields[i], values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    return obj;
}

/* f"{source}:{group_id}:w{w}", by hand for ASCII names (PyUnicode_FromFormat is slow) */
static PyObject *make_sample_id(PyObject *source, PyObject *group_id, long long w)
{
    if (!PyUnicode_IS_ASCII(source) || !PyUnicode_IS_ASCII(group_id))
        return PyUnicode_FromFormat("%U:%U:w%lld", source, group_id, w);
    char digits[24];
    int nd = format_int(digits, w);
    Py_ssize_t ns = PyUnicode_GET_LENGTH(source), ng = PyUnicode_GET_LENGTH(group_id);
    PyObject *out = PyUnicode_New(ns + ng + 3 + nd, 127);
    if (!out)
        return NULL;
    char *p = (char *)PyUnicode_1BYTE_DATA(out);
    memcpy(p, PyUnicode_1BYTE_DATA(source), (size_t)ns);
    p += ns;
    *p++ = ':';
    memcpy(p, PyUnicode_1BYTE_DATA(group_id), (size_t)ng);
    p += ng;
    *p++ = ':';
    *p++ = 'w';
    memcpy(p, digits, (size_t)nd);
    return out;
}

static int exact_long(PyObject *o, long long lo, long long hi, long long *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return lo <= v && v <= hi;
}

PyObject *gbf_pair_common(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "pair_common takes 7 arguments");
        return NULL;
    }
    PyObject *gene = args[0], *ctx = args[1], *source = args[5], *sample_type = args[6];
    long long seed, seq_len, min_slice;
    if (!exact_long(args[2], -(1LL << 62), 1LL << 62, &seed) ||
        !exact_long(args[3], 1, 1LL << 30, &seq_len) ||
        !exact_long(args[4], -(1LL << 30), 1LL << 30, &min_slice) || !PyUnicode_CheckExact(source))
        Py_RETURN_NONE;
    /* Samples are made field by field: only for a plain class (object.__new__, instance dict) */
    if (!PyType_Check(sample_type))
        Py_RETURN_NONE;
    PyTypeObject *stype = (PyTypeObject *)sample_type;
    if (stype->tp_new != PyBaseObject_Type.tp_new || !(stype->tp_flags & Py_TPFLAGS_MANAGED_DICT) || stype->tp_alloc != PyType_GenericAlloc)
        Py_RETURN_NONE;
    PyObject *tables, *amb, *frac, *pair_notes, *norm_notes;
    if (!PyTuple_CheckExact(ctx) || PyTuple_GET_SIZE(ctx) != 5)
        Py_RETURN_NONE;
    tables = PyTuple_GET_ITEM(ctx, 0);
    amb = PyTuple_GET_ITEM(ctx, 1);
    frac = PyTuple_GET_ITEM(ctx, 2);
    pair_notes = PyTuple_GET_ITEM(ctx, 3);
    norm_notes = PyTuple_GET_ITEM(ctx, 4);
    if (!PyTuple_CheckExact(tables) || PyTuple_GET_SIZE(tables) != NMOD || !PyBytes_CheckExact(amb) ||
        PyBytes_GET_SIZE(amb) != NMOD || !PyFloat_CheckExact(frac) || !PyTuple_CheckExact(pair_notes) ||
        PyTuple_GET_SIZE(pair_notes) != 24 || !PyTuple_CheckExact(norm_notes) || PyTuple_GET_SIZE(norm_notes) != 8)
        Py_RETURN_NONE;
    for (int m = 0; m < NMOD; m++) {
        PyObject *t = PyTuple_GET_ITEM(tables, m);
        if (!PyBytes_CheckExact(t) || PyBytes_GET_SIZE(t) != 256)
            Py_RETURN_NONE;
    }
    double max_fraction = PyFloat_AS_DOUBLE(frac);

    PyObject *result = NULL, *group_id = NULL, *source_file = NULL, *record_id = NULL;
    PyObject *valid[NMOD] = {NULL, NULL, NULL};
    PyObject *samples = NULL;
    long long len[NMOD] = {0, 0, 0};
    int present = 0, n_present = 0, changed_mask = 0;

    /* valid_modalities / GeneSequences.modalities: present = non-empty, each normalized */
    for (int m = 0; m < NMOD; m++) {
        PyObject *seq = PyObject_GetAttr(gene, s_modality[m]);
        if (!seq)
            goto python; /* not a GeneSequences: the Python path raises its own error */
        if (seq == Py_None) {
            Py_DECREF(seq);
            continue;
        }
        if (!PyUnicode_CheckExact(seq) || !PyUnicode_IS_ASCII(seq) || PyUnicode_GET_LENGTH(seq) >= (1LL << 30)) {
            /* (lengths under 2**30 keep every product below in 64 bits) */
            Py_DECREF(seq);
            goto fallback;
        }
        if (PyUnicode_GET_LENGTH(seq) == 0) { /* "" is not present */
            Py_DECREF(seq);
            continue;
        }
        int changed = 0;
        valid[m] = normalize(seq, m, (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(tables, m)),
                             (unsigned char)PyBytes_AS_STRING(amb)[m], max_fraction, &changed);
        Py_DECREF(seq);
        if (!valid[m]) {
            if (PyErr_Occurred())
                goto done;
            goto fallback; /* rejected by vocab.normalize: the Python path counts it */
        }
        for (int o = 0; o < m; o++)
            if (valid[o] == valid[m] && len[o] > 1) { /* one object given twice: the Python path
                                                          decodes two (pickle tells them apart) */
                PyObject *copy = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, PyUnicode_1BYTE_DATA(valid[m]),
                                                           PyUnicode_GET_LENGTH(valid[m]));
                Py_SETREF(valid[m], copy);
                if (!copy)
                    goto done;
            }
        len[m] = PyUnicode_GET_LENGTH(valid[m]);
        present |= 1 << m;
        n_present++;
        changed_mask |= changed << m;
    }
    if (n_present < 2)
        goto fallback; /* single_modality */

    /* candidate_combinations: pairs first, then the triple, in MODALITIES order; keep the
     * windowable ones */
    static const int COMBOS[4] = {1 | 2, 1 | 4, 2 | 4, 1 | 2 | 4};
    int combos[4], n_combos = 0;
    for (int c = 0; c < 4; c++) {
        if ((COMBOS[c] & present) != COMBOS[c])
            continue;
        long long l[NMOD];
        int k = 0;
        for (int m = 0; m < NMOD; m++)
            if (COMBOS[c] >> m & 1)
                l[k++] = len[m];
        int w = windowable(l, k, seq_len, min_slice);
        if (w < 0)
            goto fallback;
        if (w)
            combos[n_combos++] = COMBOS[c];
    }
    if (!n_combos)
        goto fallback; /* unpairable_lengths */

    group_id = PyObject_GetAttr(gene, s_group_id);
    if (!group_id)
        goto python;
    if (!PyUnicode_CheckExact(group_id))
        goto fallback;
    Py_ssize_t keylen;
    const char *key = PyUnicode_AsUTF8AndSize(group_id, &keylen);
    if (!key) { /* e.g. a lone surrogate: let the Python path raise */
        PyErr_Clear();
        goto fallback;
    }
    source_file = PyObject_GetAttr(gene, s_source_file);
    if (!source_file)
        goto python;
    record_id = PyObject_GetAttr(gene, s_record_id);
    if (!record_id)
        goto python;

    /* pairing.choose_and_shuffle: a combination (draw slot 0), then Fisher-Yates (slots 1, 2) */
    unsigned char draws[32];
    if (pair_draws(draws, seed, key, keylen) < 0)
        goto done;
    int combo = combos[draw_below(draws, 0, n_combos)];
    int order[NMOD], k = 0;
    for (int m = 0; m < NMOD; m++)
        if (combo >> m & 1)
            order[k++] = m;
    for (int i = k - 1, slot = 1; i >= 1; i--, slot++) {
        int j = draw_below(draws, slot, i + 1);
        int t = order[i]; order[i] = order[j]; order[j] = t;
    }
    long long lengths[NMOD], total = 0, shortest;
    for (int i = 0; i < k; i++) {
        lengths[i] = len[order[i]];
        total += lengths[i];
    }
    shortest = lengths[0];
    for (int i = 1; i < k; i++)
        if (lengths[i] < shortest)
            shortest = lengths[i];
    long long overhead = overhead_of(k);

    /* window_bounds: cuts in units of the combined length; one window when it fits */
    long long cuts_small[64], *cuts = cuts_small, n_windows;
    int grown = 0;
    if (total + overhead <= seq_len) {
        n_windows = 1;
        cuts[0] = 0;
        cuts[1] = total;
    } else {
        long long budget = seq_len - overhead - k; /* > 0: windowable checked it */
        long long n_full = total / budget;
        n_windows = n_full + (n_full * budget < total);
        if (n_windows + 1 > 64 && !(cuts = PyMem_Malloc((size_t)(n_windows + 1) * sizeof *cuts))) {
            PyErr_NoMemory();
            goto done;
        }
        for (long long i = 0; i <= n_full; i++)
            cuts[i] = i * budget;
        if (cuts[n_full] < total) {
            if (short_tail(total, shortest, budget)) {
                /* grow the tail to MIN_TAIL_SLICE residues of the shortest segment:
                 * cuts[-1] = total - -(-MIN_TAIL_SLICE * total // min(lengths)) */
                long long grow = (MIN_TAIL_SLICE * total + shortest - 1) / shortest;
                if (total - grow < 0) { /* Python's negative slice indices: leave it to Python */
                    if (cuts != cuts_small)
                        PyMem_Free(cuts);
                    goto fallback;
                }
                cuts[n_full] = total - grow;
                grown = 1; /* pair_gene notes grown_tail when short_tail holds and n > 1 */
            }
            cuts[n_full + 1] = total;
        }
    }

    /* the Sample rows: sample_id f"{source}:{group_id}:w{w}", segments (modality, slice) in
     * order, n_tokens = overhead + the slices' lengths */
    samples = PyList_New((Py_ssize_t)n_windows);
    PyObject *n_windows_obj = samples ? PyLong_FromLongLong(n_windows) : NULL;
    if (!n_windows_obj) {
        if (cuts != cuts_small)
            PyMem_Free(cuts);
        goto done;
    }
    int ok = 1;
    for (long long w = 0; w < n_windows && ok; w++) {
        PyObject *segments = PyTuple_New(k), *sample_id = NULL, *window = NULL, *n_tokens = NULL;
        long long n_tok = overhead;
        ok = segments != NULL;
        for (int i = 0; i < k && ok; i++) {
            PyObject *seq = valid[order[i]];
            Py_ssize_t n = (Py_ssize_t)lengths[i];
            /* n * a // total, clamped as Python slicing clamps */
            Py_ssize_t a = (Py_ssize_t)(lengths[i] * cuts[w] / total);
            Py_ssize_t b = (Py_ssize_t)(lengths[i] * cuts[w + 1] / total);
            if (a > n) a = n;
            if (b > n) b = n;
            if (b < a) b = a;
            PyObject *part = (a == 0 && b == n) ? Py_NewRef(seq) : PyUnicode_Substring(seq, a, b);
            PyObject *pair = part ? PyTuple_Pack(2, s_modality[order[i]], part) : NULL;
            Py_XDECREF(part);
            if (!pair) {
                ok = 0;
                break;
            }
            PyObject_GC_UnTrack(pair); /* two str: never in a cycle (as the collector's
                                          own untracking of such tuples) */
            PyTuple_SET_ITEM(segments, i, pair);
            n_tok += b - a;
        }
        if (ok) {
            PyObject_GC_UnTrack(segments);
            sample_id = make_sample_id(source, group_id, w);
            window = PyLong_FromLongLong(w);
            n_tokens = PyLong_FromLongLong(n_tok);
            ok = sample_id && window && n_tokens;
        }
        if (ok) {
            PyObject *values[9] = {sample_id, source, group_id, window, n_windows_obj, segments,
                                   n_tokens, source_file, record_id};
            PyObject *sample = make_sample(stype, values);
            if (sample)
                PyList_SET_ITEM(samples, (Py_ssize_t)w, sample);
            else
                ok = 0;
        }
        Py_XDECREF(segments);
        Py_XDECREF(sample_id);
        Py_XDECREF(window);
        Py_XDECREF(n_tokens);
    }
    Py_DECREF(n_windows_obj);
    if (cuts != cuts_small)
        PyMem_Free(cuts);
    if (!ok)
        goto done;

    /* the notes, as ready-made tuples of ctx: normalized:{modality} per changed modality;
     * combo_note(combo), then windowed_genes and grown_tail when due */
    PyObject *norm_t = PyTuple_GET_ITEM(norm_notes, changed_mask);
    PyObject *pair_t = PyTuple_GET_ITEM(pair_notes, combo * 3 + (n_windows == 1 ? 0 : grown ? 2 : 1));
    PyObject *n_present_obj = PyLong_FromLong(n_present);
    if (n_present_obj)
        result = PyTuple_Pack(4, samples, n_present_obj, norm_t, pair_t);
    Py_XDECREF(n_present_obj);
    goto done;

python:
    PyErr_Clear();
fallback:
    result = Py_NewRef(Py_None);
done:
    for (int m = 0; m < NMOD; m++)
        Py_XDECREF(valid[m]);
    Py_XDECREF(samples);
    Py_XDECREF(group_id);
    Py_XDECREF(source_file);
    Py_XDECREF(record_id);
    return result;
}
