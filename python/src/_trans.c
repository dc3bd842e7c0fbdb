/*
 * memfabric._trans: TRANS (mf_trans.h, libmemfabric's public API) as a
 * CPython extension: an instance (Trans) with buffer registration and
 * transfers single, batched and asynchronous (TransReq).  Addresses and
 * sizes are ints (the Mooncake-style TransferEngine of memfabric.trans
 * passes raw pointers); statuses come back as ints where the caller wants
 * per-piece results, exceptions (memfabric.MfError) otherwise.
 *
 * Invariants: the GIL is released around every call that may block; a
 * Trans with a call in flight in another thread or a request alive cannot
 * be closed (MF_ERR_BUSY); a closed Trans raises MF_ERR_STATE; a TransReq
 * keeps its Trans alive, and one dropped while running waits for its
 * transfer first (the memory it names is the caller's).
 */
#include "pyhelp.h"

#include <memfabric/memfabric.h>

#include <stdbool.h>

static const char *trp_name(int st)
{
    return mf_status_name((mf_status_t)st);
}

static const char *trp_str(int st)
{
    return mf_status_str((mf_status_t)st);
}

typedef struct trp_trans {
    PyObject_HEAD mf_trans_t *trans;
    Py_ssize_t busy; /* calls in flight and live requests (GIL held) */
} trp_trans_t;

typedef struct trp_req {
    PyObject_HEAD trp_trans_t *owner;
    mf_trans_req_t *req; /* NULL once finished */
    bool waiting;        /* a thread waits for it (without the GIL) */
    Py_ssize_t count;
    int status; /* final, once finished */
    PyObject *results;
} trp_req_t;

static PyTypeObject trp_trans_type;
static PyTypeObject trp_req_type;

/* The instance, or NULL with MF_ERR_STATE raised when closed. */
static mf_trans_t *trp_get(trp_trans_t *self)
{
    if (self->trans == NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return NULL;
    }
    return self->trans;
}

/* ---------------------------------------------------------------- Trans */

static PyObject *trp_trans_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"store_url", "id", "transport", "copy_threads",
                             NULL};
    const char *url, *id, *transport = NULL;
    int copy_threads = -1;
    mf_bm_config_t cfg;
    trp_trans_t *self;
    mf_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|zi", kwlist, &url, &id,
                                     &transport, &copy_threads)) {
        return NULL;
    }
    mf_bm_config_init(&cfg);
    if (transport != NULL &&
        (st = mf_bm_config_set(&cfg, "transport", transport)) != MF_OK) {
        return pyh_raise(st, NULL);
    }
    if (copy_threads >= 0) {
        char v[16];

        snprintf(v, sizeof(v), "%d", copy_threads);
        st = mf_bm_config_set(&cfg, "copy_threads", v);
        if (st != MF_OK) {
            return pyh_raise(st, NULL);
        }
    }
    self = (trp_trans_t *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_create(url, id, &cfg, &self->trans);
    Py_END_ALLOW_THREADS
    if (st != MF_OK) {
        Py_DECREF(self);
        return pyh_raise(st, NULL);
    }
    return (PyObject *)self;
}

static void trp_trans_dealloc(trp_trans_t *self)
{
    if (self->trans != NULL) { /* busy is 0: requests hold references */
        Py_BEGIN_ALLOW_THREADS
            mf_trans_destroy(self->trans);
        Py_END_ALLOW_THREADS
        self->trans = NULL;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *trp_trans_close(trp_trans_t *self, PyObject *unused)
{
    mf_trans_t *t = self->trans;

    (void)unused;
    if (t == NULL) {
        Py_RETURN_NONE;
    }
    if (self->busy > 0) {
        return pyh_raise_msg(MF_ERR_BUSY, "transfers are still in flight",
                             NULL);
    }
    self->trans = NULL;
    Py_BEGIN_ALLOW_THREADS
        mf_trans_destroy(t);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *trp_trans_id(trp_trans_t *self, void *unused)
{
    mf_trans_t *t = trp_get(self);

    (void)unused;
    return t != NULL ? PyUnicode_FromString(mf_trans_id(t)) : NULL;
}

static PyObject *trp_trans_closed(trp_trans_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->trans == NULL);
}

/* An int list of n entries (a sequence of ints) into out (n entries). */
static int trp_ints(PyObject *seq, const char *what, uint64_t *out,
                    Py_ssize_t n)
{
    PyObject *fast = PySequence_Fast(seq, what);

    if (fast == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd entries, expected %zd", what,
                     PySequence_Fast_GET_SIZE(fast), n);
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pyh_addr(PySequence_Fast_GET_ITEM(fast, i), &out[i]) != 0) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *trp_trans_register(trp_trans_t *self, PyObject *args)
{
    PyObject *addrs, *sizes;
    uint64_t *a = NULL, *s = NULL;
    mf_status_t st = MF_ERR_NOMEM;
    mf_trans_t *t;
    Py_ssize_t n;

    if (!PyArg_ParseTuple(args, "OO", &addrs, &sizes)) {
        return NULL;
    }
    n = PySequence_Size(addrs);
    if (n < 0) {
        return NULL;
    }
    a = PyMem_Calloc((size_t)n + 1, sizeof(*a));
    s = PyMem_Calloc((size_t)n + 1, sizeof(*s));
    if (a == NULL || s == NULL || trp_ints(addrs, "addrs", a, n) != 0 ||
        trp_ints(sizes, "sizes", s, n) != 0) {
        PyMem_Free(a);
        PyMem_Free(s);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    /* after the conversions, which may run Python code (and a close) */
    t = trp_get(self);
    if (t == NULL) {
        PyMem_Free(a);
        PyMem_Free(s);
        return NULL;
    }
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_register_batch(t, (void *const *)a, (const size_t *)s,
                                     (size_t)n);
    Py_END_ALLOW_THREADS
    self->busy--;
    PyMem_Free(a);
    PyMem_Free(s);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *trp_trans_deregister(trp_trans_t *self, PyObject *arg)
{
    mf_trans_t *t = trp_get(self);
    uint64_t addr;
    mf_status_t st;

    if (t == NULL || pyh_addr(arg, &addr) != 0) {
        return NULL;
    }
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_deregister(t, (void *)(uintptr_t)addr);
    Py_END_ALLOW_THREADS
    self->busy--;
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

/* The pieces of (locals, remotes, sizes): PyMem_Free() them. */
static mf_trans_piece_t *trp_pieces(PyObject *locals, PyObject *remotes,
                                    PyObject *sizes, Py_ssize_t *n_p)
{
    Py_ssize_t n = PySequence_Size(locals);
    mf_trans_piece_t *p = NULL;
    uint64_t *v = NULL;

    if (n < 0) {
        return NULL;
    }
    p = PyMem_Calloc((size_t)n + 1, sizeof(*p));
    v = PyMem_Calloc(3 * ((size_t)n + 1), sizeof(*v));
    if (p == NULL || v == NULL) {
        PyErr_NoMemory();
        goto err;
    }
    if (trp_ints(locals, "local addresses", v, n) != 0 ||
        trp_ints(remotes, "peer addresses", v + n + 1, n) != 0 ||
        trp_ints(sizes, "lengths", v + 2 * (n + 1), n) != 0) {
        goto err;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        p[i].local = (void *)(uintptr_t)v[i];
        p[i].remote = v[n + 1 + i];
        p[i].size = (size_t)v[2 * (n + 1) + i];
    }
    PyMem_Free(v);
    *n_p = n;
    return p;

err:
    PyMem_Free(p);
    PyMem_Free(v);
    return NULL;
}

static PyObject *trp_results(const mf_status_t *st, Py_ssize_t n)
{
    PyObject *list = PyList_New(n);

    for (Py_ssize_t i = 0; list != NULL && i < n; i++) {
        PyObject *v = PyLong_FromLong(st[i]);

        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* The arguments (peer, op, locals, remotes, sizes) of batch and submit:
 * 0 with *pieces_p to PyMem_Free(), or -1 with an exception set. */
static int trp_parse(trp_trans_t *self, PyObject *args, mf_trans_t **t_p,
                     const char **peer_p, int *op_p,
                     mf_trans_piece_t **pieces_p, Py_ssize_t *n_p)
{
    PyObject *locals, *remotes, *sizes;

    if (!PyArg_ParseTuple(args, "siOOO", peer_p, op_p, &locals, &remotes,
                          &sizes)) {
        return -1;
    }
    *pieces_p = trp_pieces(locals, remotes, sizes, n_p);
    if (*pieces_p == NULL) {
        return -1;
    }
    /* after the conversions, which may run Python code (and a close) */
    *t_p = trp_get(self);
    if (*t_p == NULL) {
        PyMem_Free(*pieces_p);
        return -1;
    }
    return 0;
}

/* batch(peer, op, locals, remotes, sizes) -> (status, [status per piece]):
 * never raises for a transfer that failed, so callers can map codes. */
static PyObject *trp_trans_batch(trp_trans_t *self, PyObject *args)
{
    mf_trans_piece_t *pieces;
    mf_status_t st, *results;
    PyObject *res, *out;
    const char *peer;
    mf_trans_t *t;
    Py_ssize_t n;
    int op;

    if (trp_parse(self, args, &t, &peer, &op, &pieces, &n) != 0) {
        return NULL;
    }
    results = PyMem_Calloc((size_t)n + 1, sizeof(*results));
    if (results == NULL) {
        PyMem_Free(pieces);
        return PyErr_NoMemory();
    }
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_batch(t, peer, (mf_trans_op_t)op, pieces, (size_t)n,
                            results);
    Py_END_ALLOW_THREADS
    self->busy--;
    res = trp_results(results, n);
    PyMem_Free(pieces);
    PyMem_Free(results);
    if (res == NULL) {
        return NULL;
    }
    out = Py_BuildValue("(iN)", (int)st, res);
    return out;
}

/* submit(peer, op, locals, remotes, sizes) -> TransReq (raises only if
 * nothing could start). */
static PyObject *trp_trans_submit(trp_trans_t *self, PyObject *args)
{
    mf_trans_piece_t *pieces;
    mf_trans_req_t *req = NULL;
    const char *peer;
    mf_trans_t *t;
    trp_req_t *r;
    mf_status_t st;
    Py_ssize_t n;
    int op;

    if (trp_parse(self, args, &t, &peer, &op, &pieces, &n) != 0) {
        return NULL;
    }
    r = PyObject_New(trp_req_t, &trp_req_type);
    if (r == NULL) {
        PyMem_Free(pieces);
        return NULL;
    }
    r->owner = NULL;
    r->req = NULL;
    r->waiting = false;
    r->count = n;
    r->status = MF_OK;
    r->results = NULL;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_submit(t, peer, (mf_trans_op_t)op, pieces, (size_t)n,
                             &req);
    Py_END_ALLOW_THREADS
    PyMem_Free(pieces);
    if (st != MF_OK) {
        self->busy--;
        Py_DECREF(r);
        return pyh_raise(st, NULL);
    }
    Py_INCREF(self); /* busy stays counted until the request finishes */
    r->owner = self;
    r->req = req;
    return (PyObject *)r;
}

static PyMethodDef trp_trans_methods[] = {
    {"close", (PyCFunction)trp_trans_close, METH_NOARGS,
     "close(): withdraws the id and every buffer."},
    {"register", (PyCFunction)trp_trans_register, METH_VARARGS,
     "register(addrs, sizes): registers buffers, all or none."},
    {"deregister", (PyCFunction)trp_trans_deregister, METH_O,
     "deregister(addr): withdraws the buffer registered at addr."},
    {"batch", (PyCFunction)trp_trans_batch, METH_VARARGS,
     "batch(peer, op, locals, remotes, sizes) -> (status, results)."},
    {"submit", (PyCFunction)trp_trans_submit, METH_VARARGS,
     "submit(peer, op, locals, remotes, sizes) -> TransReq."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef trp_trans_getset[] = {
    {"id", (getter)trp_trans_id, NULL, "The instance's id.", NULL},
    {"closed", (getter)trp_trans_closed, NULL, "Whether it was closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject trp_trans_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._trans.Trans",
    .tp_basicsize = sizeof(trp_trans_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trans(store_url, id, transport=None, copy_threads=-1): a "
              "TRANS instance (mf_trans.h).",
    .tp_new = trp_trans_new,
    .tp_dealloc = (destructor)trp_trans_dealloc,
    .tp_methods = trp_trans_methods,
    .tp_getset = trp_trans_getset,
};

/* ------------------------------------------------------------ TransReq */

/* r is finished: its status and results (NULL when out of memory, or
 * not wanted), the owner's count down. */
static void trp_req_done(trp_req_t *r, mf_status_t st,
                         const mf_status_t *results)
{
    r->req = NULL;
    r->status = st;
    r->results = results != NULL ? trp_results(results, r->count) : NULL;
    r->owner->busy--;
    Py_CLEAR(r->owner);
}

/* Finishes r with mf_trans_wait(timeout_ms): 1 finished, 0 still
 * running, -1 exception (MF_ERR_BUSY: another thread waits for it). */
static int trp_req_finish(trp_req_t *r, int timeout_ms)
{
    mf_trans_req_t *req = r->req;
    mf_status_t st, *results;

    if (req == NULL) {
        return 1;
    }
    if (r->waiting) {
        pyh_raise_msg(MF_ERR_BUSY, "another thread waits for this transfer",
                      NULL);
        return -1;
    }
    results = PyMem_Calloc((size_t)r->count + 1, sizeof(*results));
    if (results == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->waiting = true;
    Py_BEGIN_ALLOW_THREADS
        st = mf_trans_wait(req, timeout_ms, results);
    Py_END_ALLOW_THREADS
    r->waiting = false;
    if (st == MF_INPROGRESS) {
        PyMem_Free(results);
        return 0;
    }
    trp_req_done(r, st, results);
    PyMem_Free(results);
    return r->results != NULL ? 1 : -1;
}

/* wait(timeout_ms=-1) -> status, or None if still running. */
static PyObject *trp_req_wait(trp_req_t *r, PyObject *args)
{
    int timeout_ms = -1, done;

    if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) {
        return NULL;
    }
    done = trp_req_finish(r, timeout_ms);
    if (done < 0) {
        return NULL;
    }
    if (done == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLong(r->status);
}

static PyObject *trp_req_results(trp_req_t *r, void *unused)
{
    (void)unused;
    if (r->results == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(r->results);
    return r->results;
}

static void trp_req_dealloc(trp_req_t *r)
{
    if (r->req != NULL) { /* its memory is the caller's: wait for it */
        mf_trans_req_t *req = r->req;
        PyObject *type, *value, *tb;
        mf_status_t st;

        PyErr_Fetch(&type, &value, &tb);
        Py_BEGIN_ALLOW_THREADS
            st = mf_trans_wait(req, -1, NULL);
        Py_END_ALLOW_THREADS
        trp_req_done(r, st, NULL);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(r->results);
    Py_XDECREF(r->owner);
    PyObject_Free(r);
}

static PyMethodDef trp_req_methods[] = {
    {"wait", (PyCFunction)trp_req_wait, METH_VARARGS,
     "wait(timeout_ms=-1) -> the status, or None while it runs."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef trp_req_getset[] = {
    {"results", (getter)trp_req_results, NULL,
     "Statuses per piece once finished, else None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject trp_req_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._trans.TransReq",
    .tp_basicsize = sizeof(trp_req_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A TRANS transfer in flight (Trans.submit).",
    .tp_dealloc = (destructor)trp_req_dealloc,
    .tp_methods = trp_req_methods,
    .tp_getset = trp_req_getset,
};

/* -------------------------------------------------------------- module */

static struct PyModuleDef trp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memfabric._trans",
    .m_doc = "TRANS (libmemfabric's mf_trans.h) for the memfabric package.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__trans(void)
{
    PyObject *m;

    if (pyh_errors_init("MfError", trp_name, trp_str) != 0 ||
        PyType_Ready(&trp_trans_type) != 0 ||
        PyType_Ready(&trp_req_type) != 0) {
        return NULL;
    }
    m = PyModule_Create(&trp_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&trp_trans_type);
    Py_INCREF(&trp_req_type);
    if (PyModule_AddIntConstant(m, "WRITE", MF_TRANS_WRITE) != 0 ||
        PyModule_AddIntConstant(m, "READ", MF_TRANS_READ) != 0 ||
        PyModule_AddIntConstant(m, "INPROGRESS", MF_INPROGRESS) != 0 ||
        PyModule_AddObject(m, "Trans", (PyObject *)&trp_trans_type) != 0 ||
        PyModule_AddObject(m, "TransReq", (PyObject *)&trp_req_type) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
