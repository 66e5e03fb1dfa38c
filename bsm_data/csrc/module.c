/* bsm_data._gbfast: the module object and its entry points. */
#include "gbfast.h"

static PyObject *str_or_none(gbf_str s, int present)
{
    if (!present)
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(s.p, s.n, NULL);
}

/* The qualifier names, in enum order, as bsm_data.genbank's q dict spells them. */
static const char *QNAMES[GBF_NQ] = {
    "gene", "locus_tag", "protein_id", "transcript_id", "product", "transl_table",
    "codon_start", "translation", "pseudo", "pseudogene", "exception", "trans_splicing",
    "ribosomal_slippage", "gene_id",
};

/* The parsed record as plain Python values, for the tests that compare parse.c with the
 * gb-io conversion: (id, seq, circular, [(index, kind, parts, operator, q), ...]). Multi-line
 * values are returned raw (the tests normalise them). */
static PyObject *debug_parse(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    gbf_record rec = {0};
    int ok = gbf_parse_entry(view.buf, view.len, &rec);
    PyObject *result = NULL, *features = NULL;
    if (ok < 0)
        goto done;
    if (ok == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    features = PyList_New(0);
    if (!features)
        goto done;
    for (int i = 0; i < rec.nfeatures; i++) {
        const gbf_feature *f = &rec.features[i];
        PyObject *parts = PyList_New(f->nparts);
        PyObject *q = PyDict_New();
        if (!parts || !q) {
            Py_XDECREF(parts);
            Py_XDECREF(q);
            goto done;
        }
        for (int j = 0; j < f->nparts; j++) {
            const gbf_part *p = &f->parts[j];
            PyList_SET_ITEM(parts, j, Py_BuildValue("(nniOOO)", p->start, p->end, p->strand,
                                                    p->before ? Py_True : Py_False,
                                                    p->after ? Py_True : Py_False, Py_None));
        }
        for (int k = 0; k < GBF_NQ; k++) {
            const gbf_qual *v = &f->q[k];
            if (!v->present)
                continue;
            PyObject *value = str_or_none(v->value, v->has_value);
            if (!value || PyDict_SetItemString(q, QNAMES[k], value) < 0) {
                Py_XDECREF(value);
                Py_DECREF(parts);
                Py_DECREF(q);
                goto done;
            }
            Py_DECREF(value);
        }
        const char *op = f->nparts > 1 ? (f->is_order ? "order" : "join") : "single";
        PyObject *item = Py_BuildValue("(iNNsN)", f->index,
                                       PyUnicode_DecodeLatin1(f->kind_name.p, f->kind_name.n, NULL),
                                       parts, op, q);
        if (!item || PyList_Append(features, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    result = Py_BuildValue("(Ny#OO)", PyUnicode_DecodeLatin1(rec.id.p, rec.id.n, NULL), rec.seq,
                           rec.length, rec.circular ? Py_True : Py_False, features);
done:
    Py_XDECREF(features);
    gbf_record_clear(&rec);
    PyBuffer_Release(&view);
    return result;
}

/* extract_entry(batch, start, end, flank, tables) -> None (use the Python path) or
 * (record_id, rows, notes, anchors, emitted); see extract.c for the row layout. */
static PyObject *extract_entry(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, end;
    int flank;
    PyObject *tables;
    if (!PyArg_ParseTuple(args, "y*nniO", &view, &start, &end, &flank, &tables))
        return NULL;
    if (start < 0 || end > view.len || start > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "entry span outside the buffer");
        return NULL;
    }
    gbf_record rec = {0};
    PyObject *result = NULL;
    int ok = gbf_parse_entry((const char *)view.buf + start, end - start, &rec);
    if (ok > 0)
        result = gbf_extract_record(&rec, flank, tables);
    else if (ok == 0)
        result = Py_NewRef(Py_None);
    gbf_record_clear(&rec);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"_debug_parse", debug_parse, METH_O, "The parsed model of one entry, or None outside the fast subset."},
    {"extract_entry", extract_entry, METH_VARARGS, "Gene rows of one entry, or None outside the fast subset."},
    {"pair_common", (PyCFunction)(void (*)(void))gbf_pair_common, METH_FASTCALL,
     "Pair samples of one gene (bsm_data.pairing.pair_gene's common path), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_gbfast", "Compiled fast path of bsm_data.genbank.", -1, methods,
};

PyMODINIT_FUNC PyInit__gbfast(void)
{
    PyObject *m = PyModule_Create(&moduledef);
    if (m && (gbf_extract_init(m) < 0 || gbf_pair_init(m) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
