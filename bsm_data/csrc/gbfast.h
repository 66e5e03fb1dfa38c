/* Compiled fast paths of bsm_data.genbank (one GenBank entry -> finished gene rows) and of
 * bsm_data.pairing (one gene -> pair samples).
 *
 * parse.c reads the common, well-formed subset of the format into gbf_record; anything
 * outside it makes gbf_parse_entry return 0 and the entry goes through the Python path
 * (gb-io, LOCUS repair, Biopython), which stays the reference. extract.c turns a
 * gbf_record into the rows bsm_data.genbank._Extractor.record would give. pair.c does
 * pair_gene's common case and hands every other gene back to Python. Tests check the
 * compiled and Python paths agree row for row and count for count.
 */
#ifndef BSM_GBFAST_H
#define BSM_GBFAST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    const char *p; /* into the entry text (or the record's own buffer); not NUL-terminated */
    Py_ssize_t n;
} gbf_str;

typedef struct {
    Py_ssize_t start, end; /* 0-based, half-open, 0 <= start < end */
    int strand;            /* +1 or -1 */
    int before, after;     /* '<' on the lower / '>' on the upper position, as gb-io's Range */
} gbf_part;

enum { GBF_KIND_CDS, GBF_KIND_GENE, GBF_KIND_MRNA, GBF_KIND_RNA };

/* The qualifiers bsm_data.genbank reads (FIRST_VALUE_QUALIFIERS, plus db_xref's first
 * "GeneID:" value as GENE_ID without the prefix). The first occurrence wins. */
enum {
    GBF_Q_GENE, GBF_Q_LOCUS_TAG, GBF_Q_PROTEIN_ID, GBF_Q_TRANSCRIPT_ID, GBF_Q_PRODUCT,
    GBF_Q_TRANSL_TABLE, GBF_Q_CODON_START, GBF_Q_TRANSLATION, GBF_Q_PSEUDO, GBF_Q_PSEUDOGENE,
    GBF_Q_EXCEPTION, GBF_Q_TRANS_SPLICING, GBF_Q_RIBOSOMAL_SLIPPAGE, GBF_Q_GENE_ID, GBF_NQ
};

typedef struct {
    int present;   /* the qualifier occurs on the feature */
    int has_value; /* 0 for a bare flag such as /pseudo (gb-io's value None) */
    int multiline; /* only PRODUCT and TRANSLATION may span lines: value then covers the raw
                      text between the quotes, newlines and indentation included, and the
                      consumer normalises it (translation: all whitespace dropped; product:
                      its words joined by single spaces) */
    gbf_str value; /* without the surrounding quotes */
} gbf_qual;

typedef struct {
    int index;         /* position among ALL features of the record, as gb-io numbers them */
    int kind;          /* GBF_KIND_*; RNA = ncRNA tRNA rRNA tmRNA misc_RNA precursor_RNA */
    gbf_str kind_name; /* the feature key as written, e.g. "tRNA" */
    int is_order;      /* more than one part and the location text contains "order(" */
    gbf_part *parts;   /* in transcript order, exactly as bsm_data.genbank._gb_parts */
    int nparts;
    gbf_qual q[GBF_NQ];
} gbf_feature;

typedef struct {
    gbf_str id;        /* first token of VERSION, else of ACCESSION, else the LOCUS name */
    char *seq;         /* the sequence, upper-cased (owned) */
    Py_ssize_t length; /* bytes in seq; > 0 */
    int circular;      /* LOCUS topology */
    gbf_feature *features; /* the kept kinds only (CDS, gene, mRNA, RNA kinds), in file order */
    int nfeatures;
    /* owned storage, released by gbf_record_clear */
    gbf_part *part_pool;
    Py_ssize_t part_cap, feature_cap, seq_cap;
} gbf_record;

/* 1: parsed into rec (previous contents replaced); 0: outside the fast subset, use the
 * Python path; -1: out of memory (a Python exception is set). rec is reusable. */
int gbf_parse_entry(const char *text, Py_ssize_t n, gbf_record *rec);
void gbf_record_clear(gbf_record *rec);

/* extract.c */
int gbf_extract_init(PyObject *module);
PyObject *gbf_extract_record(const gbf_record *rec, int flank, PyObject *tables);

/* pair.c */
int gbf_pair_init(PyObject *module);
PyObject *gbf_pair_common(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
