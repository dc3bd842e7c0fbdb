/*
 * memfabric._memfabric: MemFabric (libmemfabric, public mf_* API only) as
 * a CPython extension: library init, the BM pool (create, join/leave,
 * rank and GVA queries, copies single, batched and asynchronous, memory
 * registration), the config store client and the embeddable store server.
 *
 * Errors raise memfabric.MfError (status, name, message).  Addresses are
 * ints; a local side may instead be a buffer-protocol object, whose view
 * is held for the copy (for an asynchronous copy: until it completed).
 *
 * Invariants: the GIL is released around every call that may block; an
 * object whose call is in flight in another thread cannot be closed
 * (MF_ERR_BUSY); a closed object raises MF_ERR_STATE; a CopyRequest that
 * is dropped while its copy runs waits for the copy before it releases
 * the buffers the copy uses.
 */
#include "pyhelp.h"

#include <compat/smem.h>
#include <memfabric/memfabric.h>

static const char *mfp_name(int st)
{
    return mf_status_name((mf_status_t)st);
}

static const char *mfp_str(int st)
{
    return mf_status_str((mf_status_t)st);
}

static PyObject *mfp_check(mf_status_t st)
{
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------ library, logs */

static PyObject *mfp_init(PyObject *mod, PyObject *unused)
{
    return mfp_check(mf_init());
}

static PyObject *mfp_uninit(PyObject *mod, PyObject *unused)
{
    mf_uninit();
    Py_RETURN_NONE;
}

static PyObject *mfp_version(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(mf_version());
}

static PyObject *mfp_status_name(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyUnicode_FromString(mf_status_name((mf_status_t)st));
}

static PyObject *mfp_status_str(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyUnicode_FromString(mf_status_str((mf_status_t)st));
}

static PyObject *mfp_log_set_level(PyObject *mod, PyObject *arg)
{
    long lv = PyLong_AsLong(arg);

    if (lv == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (lv < MF_LOG_OFF || lv > MF_LOG_TRACE) {
        PyErr_SetString(PyExc_ValueError, "log level must be 0..5");
        return NULL;
    }
    mf_log_set_level((mf_log_level_t)lv);
    Py_RETURN_NONE;
}

static PyObject *mfp_log_get_level(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLong(mf_log_get_level());
}

static PyObject *mfp_bm_config_help(PyObject *mod, PyObject *unused)
{
    return pyh_capture(mf_bm_config_help);
}

/* Applies (key, value) pairs or a dict with a setter.  0 or -1. */
typedef mf_status_t (*mfp_set_fn)(void *cfg, const char *key,
                                  const char *value);

static int mfp_apply(PyObject *settings, void *cfg, mfp_set_fn set)
{
    PyObject *items;
    Py_ssize_t n;

    if (settings == NULL || settings == Py_None) {
        return 0;
    }
    items = PyDict_Check(settings) ? PyMapping_Items(settings)
                                   : pyh_tuple(settings, "settings");
    if (items == NULL) {
        return -1;
    }
    n = PySequence_Size(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PySequence_GetItem(items, i), *k, *v;
        const char *ks, *vs;
        mf_status_t st;

        if (kv == NULL) {
            Py_DECREF(items);
            return -1;
        }
        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
            Py_DECREF(kv);
            Py_DECREF(items);
            PyErr_SetString(PyExc_TypeError, "settings are (key, value) pairs");
            return -1;
        }
        k = PyObject_Str(PyTuple_GET_ITEM(kv, 0));
        v = pyh_setting_str(PyTuple_GET_ITEM(kv, 1));
        Py_DECREF(kv);
        ks = k != NULL ? PyUnicode_AsUTF8(k) : NULL;
        vs = v != NULL ? PyUnicode_AsUTF8(v) : NULL;
        st = ks != NULL && vs != NULL ? set(cfg, ks, vs) : MF_OK;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (ks == NULL || vs == NULL) {
            Py_DECREF(items);
            return -1;
        }
        if (st != MF_OK) {
            Py_DECREF(items);
            pyh_raise(st, NULL);
            return -1;
        }
    }
    Py_DECREF(items);
    return 0;
}

static mf_status_t mfp_bm_set(void *cfg, const char *k, const char *v)
{
    return mf_bm_config_set(cfg, k, v);
}

static mf_status_t mfp_server_set(void *cfg, const char *k, const char *v)
{
    return mf_store_server_config_set(cfg, k, v);
}

/* --------------------------------------------------------- bootstrap */

static PyObject *mfp_bm_init(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"store_url", "world_size",  "rank",
                             "settings",  "config_file", NULL};
    const char *url, *config_file = NULL;
    unsigned world, rank = MF_RANK_AUTO;
    PyObject *settings = NULL;
    mf_bm_config_t cfg;
    mf_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "sI|IOz", kwlist, &url, &world,
                                     &rank, &settings, &config_file)) {
        return NULL;
    }
    mf_bm_config_init(&cfg);
    if (config_file != NULL) {
        st = mf_bm_config_load(&cfg, config_file);
        if (st != MF_OK) {
            return pyh_raise(st, NULL);
        }
    }
    if (mfp_apply(settings, &cfg, mfp_bm_set) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_init(url, world, rank, &cfg);
    Py_END_ALLOW_THREADS
    return mfp_check(st);
}

static PyObject *mfp_device_ready(PyObject *mod, PyObject *unused)
{
    mf_status_t st;

    (void)mod;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
        st = mf_device_ready();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(st == MF_OK);
}

static PyObject *mfp_smem_status(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    (void)mod;
    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLong(smem_status((int32_t)Py_MAX(st, INT32_MIN)));
}

static PyObject *mfp_bm_uninit(PyObject *mod, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
        mf_bm_uninit();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *mfp_bm_rank_id(PyObject *mod, PyObject *unused)
{
    uint32_t rank;
    mf_status_t st = mf_bm_rank_id(&rank);

    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromUnsignedLong(rank);
}

static PyObject *mfp_bm_world_size(PyObject *mod, PyObject *unused)
{
    return PyLong_FromUnsignedLong(mf_bm_world_size());
}

/* ------------------------------------------------------ copy requests */

typedef struct mfp_pool {
    PyObject_HEAD mf_bm_t *bm;
    int busy;             /* calls in flight with the GIL released */
    int pending;          /* asynchronous copies not finished */
    PyObject *registered; /* dict address -> object registered by buffer */
} mfp_pool_t;

typedef struct mfp_req {
    PyObject_HEAD mf_bm_req_t *req; /* NULL once finished */
    int status;                     /* final status once finished */
    int busy;                       /* a wait() in flight */
    pyh_views_t views;
    PyObject *pool; /* keeps the pool alive while the copy runs */
} mfp_req_t;

static PyTypeObject mfp_req_type;

static void mfp_req_finish(mfp_req_t *self, mf_status_t st)
{
    if (self->req != NULL && self->pool != NULL) {
        ((mfp_pool_t *)self->pool)->pending--;
    }
    self->req = NULL;
    self->status = st;
    pyh_views_release(&self->views);
    Py_CLEAR(self->pool);
}

static PyObject *mfp_req_wait(mfp_req_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout_ms", NULL};
    int timeout_ms = -1;
    mf_bm_req_t *req;
    mf_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i", kwlist, &timeout_ms)) {
        return NULL;
    }
    if (self->req != NULL) {
        if (self->busy) {
            return pyh_raise(MF_ERR_BUSY, NULL);
        }
        req = self->req;
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
            st = mf_bm_wait(req, timeout_ms);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (st == MF_ERR_TIMEOUT) {
            return pyh_raise(st, NULL); /* still running */
        }
        mfp_req_finish(self, st);
    }
    return mfp_check(self->status);
}

static PyObject *mfp_req_test(mfp_req_t *self, PyObject *unused)
{
    mf_status_t st;

    if (self->req != NULL) {
        if (self->busy) {
            Py_RETURN_FALSE;
        }
        st = mf_bm_test(self->req);
        if (st == MF_INPROGRESS) {
            Py_RETURN_FALSE;
        }
        mfp_req_finish(self, st);
    }
    if (self->status != MF_OK) {
        return pyh_raise(self->status, NULL);
    }
    Py_RETURN_TRUE;
}

static PyObject *mfp_req_done(mfp_req_t *self, void *unused)
{
    return PyBool_FromLong(self->req == NULL);
}

static void mfp_req_dealloc(mfp_req_t *self)
{
    if (self->req != NULL) {
        mf_bm_req_t *req = self->req;
        mf_status_t st;

        /* the copy may still write into the views: wait for it */
        Py_BEGIN_ALLOW_THREADS
            st = mf_bm_wait(req, -1);
        Py_END_ALLOW_THREADS
        mfp_req_finish(self, st);
    }
    pyh_views_release(&self->views);
    Py_XDECREF(self->pool);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef mfp_req_methods[] = {
    {"wait", PYH_KW(mfp_req_wait), METH_VARARGS | METH_KEYWORDS,
     "wait(timeout_ms=-1)\n--\n\nWaits for the copy (timeout_ms < 0: "
     "without limit).  Raises MfError with the copy's failure, or "
     "MF_ERR_TIMEOUT while it still runs (wait again later)."},
    {"test", (PyCFunction)mfp_req_test, METH_NOARGS,
     "test()\n--\n\nTrue when the copy completed (raises its failure), "
     "False while it runs."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mfp_req_getset[] = {
    {"done", (getter)mfp_req_done, NULL,
     "True once wait() or test() saw the copy complete.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject mfp_req_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._memfabric.CopyRequest",
    .tp_basicsize = sizeof(mfp_req_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An asynchronous copy in flight (Pool.copy_async, "
              "Pool.copy_batch_async).  Holds the buffers it uses until it "
              "completed; dropping it waits for the copy.",
    .tp_dealloc = (destructor)mfp_req_dealloc,
    .tp_methods = mfp_req_methods,
    .tp_getset = mfp_req_getset,
};

/* --------------------------------------------------------------- pool */

static int mfp_pool_enter(mfp_pool_t *self)
{
    if (self->bm == NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    self->busy++;
    return 0;
}

static void mfp_pool_leave(mfp_pool_t *self)
{
    self->busy--;
}

static PyObject *mfp_pool_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"id",    "local_dram_size", "max_dram_per_rank",
                             "flags", "local_hbm_size",  "max_hbm_per_rank",
                             NULL};
    unsigned id, flags = 0;
    unsigned long long local = 0, max = 0, hbm = 0, max_hbm = 0;
    mf_bm_create_params_t params;
    mfp_pool_t *self;
    mf_status_t st;
    mf_bm_t *bm = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "IK|KIKK", kwlist, &id, &local,
                                     &max, &flags, &hbm, &max_hbm)) {
        return NULL;
    }
    mf_bm_create_params_init(&params);
    params.local_dram_size = local;
    params.max_dram_per_rank = max != 0 ? max : local;
    params.flags = flags;
    params.local_hbm_size = hbm;
    params.max_hbm_per_rank = max_hbm != 0 ? max_hbm : hbm;
    self = (mfp_pool_t *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->registered = PyDict_New();
    if (self->registered == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_create(id, &params, &bm);
    Py_END_ALLOW_THREADS
    if (st != MF_OK) {
        Py_DECREF(self);
        return pyh_raise(st, NULL);
    }
    self->bm = bm;
    return (PyObject *)self;
}

static void mfp_pool_destroy_now(mfp_pool_t *self)
{
    mf_bm_t *bm = self->bm;

    self->bm = NULL;
    if (bm != NULL) {
        Py_BEGIN_ALLOW_THREADS
            mf_bm_destroy(bm);
        Py_END_ALLOW_THREADS
    }
    if (self->registered != NULL) {
        PyDict_Clear(self->registered);
    }
}

static void mfp_pool_dealloc(mfp_pool_t *self)
{
    mfp_pool_destroy_now(self);
    Py_XDECREF(self->registered);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *mfp_pool_destroy(mfp_pool_t *self, PyObject *unused)
{
    if (self->busy > 0 || self->pending > 0) {
        return pyh_raise(MF_ERR_BUSY, NULL);
    }
    mfp_pool_destroy_now(self);
    Py_RETURN_NONE;
}

typedef mf_status_t (*mfp_bm_fn)(mf_bm_t *bm);

static PyObject *mfp_pool_call(mfp_pool_t *self, mfp_bm_fn fn)
{
    mf_status_t st;

    if (mfp_pool_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = fn(self->bm);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    return mfp_check(st);
}

static PyObject *mfp_pool_join(mfp_pool_t *self, PyObject *unused)
{
    return mfp_pool_call(self, mf_bm_join);
}

static PyObject *mfp_pool_leave_m(mfp_pool_t *self, PyObject *unused)
{
    return mfp_pool_call(self, mf_bm_leave);
}

static PyObject *mfp_pool_gva_of_rank(mfp_pool_t *self, PyObject *args)
{
    unsigned rank;
    int type = MF_MEM_HOST;
    void *gva;

    if (!PyArg_ParseTuple(args, "I|i", &rank, &type)) {
        return NULL;
    }
    if (self->bm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    gva = mf_bm_gva_of_rank(self->bm, rank, (mf_mem_type_t)type);
    if (gva == NULL) {
        return pyh_raise(MF_ERR_OUT_OF_RANGE, NULL);
    }
    return PyLong_FromUnsignedLongLong((uintptr_t)gva);
}

static PyObject *mfp_pool_rank_of_gva(mfp_pool_t *self, PyObject *arg)
{
    uint64_t gva;
    uint32_t rank;
    mf_status_t st;

    if (pyh_addr(arg, &gva) != 0) {
        return NULL;
    }
    if (self->bm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    st = mf_bm_rank_of_gva(self->bm, gva, &rank);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromUnsignedLong(rank);
}

static PyObject *mfp_pool_rank_joined(mfp_pool_t *self, PyObject *arg)
{
    unsigned long rank = PyLong_AsUnsignedLong(arg);

    if (rank == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->bm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    return PyBool_FromLong(mf_bm_rank_joined(self->bm, (uint32_t)rank));
}

static PyObject *mfp_pool_rank_wait(mfp_pool_t *self, PyObject *args)
{
    unsigned int rank;
    int timeout_ms = -1;
    mf_status_t st;

    if (!PyArg_ParseTuple(args, "I|i", &rank, &timeout_ms) ||
        mfp_pool_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_rank_wait(self->bm, rank, timeout_ms);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    return mfp_check(st);
}

static PyObject *mfp_pool_local_size(mfp_pool_t *self, PyObject *args)
{
    int type = MF_MEM_HOST;

    if (!PyArg_ParseTuple(args, "|i", &type)) {
        return NULL;
    }
    if (self->bm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    return PyLong_FromUnsignedLongLong(
        mf_bm_local_size(self->bm, (mf_mem_type_t)type));
}

/* One side of a copy: an int address or a buffer (its view kept in vs).
 * *len_p is SIZE_MAX for an address. */
static int mfp_side(pyh_views_t *vs, PyObject *obj, int writable,
                    uint64_t *addr_p, size_t *len_p)
{
    void *p;

    if (PyLong_Check(obj)) {
        *len_p = SIZE_MAX;
        return pyh_addr(obj, addr_p);
    }
    if (pyh_views_take(vs, obj, writable, &p, len_p) != 0) {
        return -1;
    }
    *addr_p = (uint64_t)(uintptr_t)p;
    return 0;
}

/* Parses (src, dst, size) of one copy; size None: the buffers' length. */
static int mfp_piece(pyh_views_t *vs, PyObject *src, PyObject *dst,
                     PyObject *size_obj, mf_copy_piece_t *piece)
{
    size_t slen, dlen, size;

    if (mfp_side(vs, src, 0, &piece->src, &slen) != 0 ||
        mfp_side(vs, dst, 1, &piece->dst, &dlen) != 0) {
        return -1;
    }
    if (size_obj == NULL || size_obj == Py_None) {
        if (slen == SIZE_MAX && dlen == SIZE_MAX) {
            PyErr_SetString(PyExc_TypeError,
                            "size is needed when both sides are addresses");
            return -1;
        }
        size = slen < dlen ? slen : dlen;
    } else if (pyh_size(size_obj, &size) != 0) {
        return -1;
    }
    if (size > slen || size > dlen) {
        PyErr_Format(PyExc_ValueError,
                     "size %zu exceeds the buffer given (%zu bytes)", size,
                     size > slen ? slen : dlen);
        return -1;
    }
    piece->size = size;
    return 0;
}

/* Pieces of a batch: a sequence of (src, dst[, size]). PyMem array. */
static int mfp_pieces(pyh_views_t *vs, PyObject *seq,
                      mf_copy_piece_t **pieces_p, size_t *count_p)
{
    PyObject *t = pyh_tuple(seq, "pieces");
    mf_copy_piece_t *pieces;
    Py_ssize_t n;

    if (t == NULL) {
        return -1;
    }
    n = PyTuple_GET_SIZE(t);
    pieces = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(*pieces));
    if (pieces == NULL) {
        Py_DECREF(t);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(t, i);

        if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) < 2 ||
            PyTuple_GET_SIZE(p) > 3) {
            PyErr_SetString(PyExc_TypeError,
                            "a piece is a tuple (src, dst[, size])");
            goto fail;
        }
        if (mfp_piece(vs, PyTuple_GET_ITEM(p, 0), PyTuple_GET_ITEM(p, 1),
                      PyTuple_GET_SIZE(p) == 3 ? PyTuple_GET_ITEM(p, 2) : NULL,
                      &pieces[i]) != 0) {
            goto fail;
        }
    }
    Py_DECREF(t);
    *pieces_p = pieces;
    *count_p = (size_t)n;
    return 0;
fail:
    PyMem_Free(pieces);
    Py_DECREF(t);
    return -1;
}

static PyObject *mfp_pool_copy(mfp_pool_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"src", "dst", "size", "direction", NULL};
    PyObject *src, *dst, *size = NULL;
    int dir = MF_COPY_AUTO;
    pyh_views_t vs = {0};
    mf_copy_piece_t piece;
    mf_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|Oi", kwlist, &src, &dst,
                                     &size, &dir) ||
        mfp_piece(&vs, src, dst, size, &piece) != 0 ||
        mfp_pool_enter(self) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_copy(self->bm, piece.src, piece.dst, piece.size,
                        (mf_copy_dir_t)dir);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    pyh_views_release(&vs);
    return mfp_check(st);
}

static PyObject *mfp_pool_copy_batch(mfp_pool_t *self, PyObject *args,
                                     PyObject *kw)
{
    static char *kwlist[] = {"pieces", "direction", NULL};
    PyObject *seq, *results_list;
    int dir = MF_COPY_AUTO;
    pyh_views_t vs = {0};
    mf_copy_piece_t *pieces = NULL;
    mf_status_t st, *results;
    size_t count = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", kwlist, &seq, &dir) ||
        mfp_pieces(&vs, seq, &pieces, &count) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (results == NULL || mfp_pool_enter(self) != 0) {
        if (results == NULL) {
            PyErr_NoMemory();
        }
        PyMem_Free(results);
        PyMem_Free(pieces);
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_copy_batch(self->bm, pieces, count, (mf_copy_dir_t)dir,
                              results);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    PyMem_Free(pieces);
    pyh_views_release(&vs);
    if (st != MF_OK) {
        int *ints = PyMem_Calloc(count > 0 ? count : 1, sizeof(int));

        results_list = NULL;
        if (ints != NULL) {
            for (size_t i = 0; i < count; i++) {
                ints[i] = results[i];
            }
            results_list = pyh_int_list(ints, count);
            PyMem_Free(ints);
        }
        PyMem_Free(results);
        if (results_list == NULL) {
            return PyErr_Occurred() ? NULL : PyErr_NoMemory();
        }
        pyh_raise(st, results_list);
        Py_DECREF(results_list);
        return NULL;
    }
    PyMem_Free(results);
    Py_RETURN_NONE;
}

static PyObject *mfp_pool_async(mfp_pool_t *self, pyh_views_t *vs,
                                mf_copy_piece_t *pieces, size_t count,
                                int single, int dir)
{
    mfp_req_t *r;
    mf_bm_req_t *req = NULL;
    mf_status_t st;

    if (mfp_pool_enter(self) != 0) {
        pyh_views_release(vs);
        return NULL;
    }
    r = PyObject_New(mfp_req_t, &mfp_req_type);
    if (r == NULL) {
        mfp_pool_leave(self);
        pyh_views_release(vs);
        return NULL;
    }
    r->req = NULL;
    r->status = MF_OK;
    r->busy = 0;
    r->views = *vs; /* the request owns the views from here */
    memset(vs, 0, sizeof(*vs));
    r->pool = (PyObject *)self;
    Py_INCREF(self);
    Py_BEGIN_ALLOW_THREADS
        if (single) {
            st = mf_bm_copy_async(self->bm, pieces[0].src, pieces[0].dst,
                                  pieces[0].size, (mf_copy_dir_t)dir, &req);
        } else {
            st = mf_bm_copy_batch_async(self->bm, pieces, count,
                                        (mf_copy_dir_t)dir, &req);
        }
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    if (st != MF_OK) {
        Py_DECREF(r);
        return pyh_raise(st, NULL);
    }
    r->req = req;
    self->pending++;
    return (PyObject *)r;
}

static PyObject *mfp_pool_copy_async(mfp_pool_t *self, PyObject *args,
                                     PyObject *kw)
{
    static char *kwlist[] = {"src", "dst", "size", "direction", NULL};
    PyObject *src, *dst, *size = NULL;
    int dir = MF_COPY_AUTO;
    pyh_views_t vs = {0};
    mf_copy_piece_t piece;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|Oi", kwlist, &src, &dst,
                                     &size, &dir) ||
        mfp_piece(&vs, src, dst, size, &piece) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    return mfp_pool_async(self, &vs, &piece, 1, 1, dir);
}

static PyObject *mfp_pool_copy_batch_async(mfp_pool_t *self, PyObject *args,
                                           PyObject *kw)
{
    static char *kwlist[] = {"pieces", "direction", NULL};
    PyObject *seq, *res;
    int dir = MF_COPY_AUTO;
    pyh_views_t vs = {0};
    mf_copy_piece_t *pieces = NULL;
    size_t count = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", kwlist, &seq, &dir) ||
        mfp_pieces(&vs, seq, &pieces, &count) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    /* the library copies the pieces array */
    res = mfp_pool_async(self, &vs, pieces, count, 0, dir);
    PyMem_Free(pieces);
    return res;
}

static PyObject *mfp_pool_register(mfp_pool_t *self, PyObject *args)
{
    PyObject *obj, *size_obj = NULL, *key, *held;
    pyh_views_t vs = {0};
    uint64_t addr;
    size_t len, size;
    mf_status_t st;

    if (!PyArg_ParseTuple(args, "O|O", &obj, &size_obj) ||
        mfp_side(&vs, obj, 0, &addr, &len) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    pyh_views_release(&vs); /* the object itself is kept below */
    if (size_obj == NULL || size_obj == Py_None) {
        if (len == SIZE_MAX) {
            PyErr_SetString(PyExc_TypeError, "an address needs a size");
            return NULL;
        }
        size = len;
    } else if (pyh_size(size_obj, &size) != 0) {
        return NULL;
    } else if (size > len) {
        PyErr_SetString(PyExc_ValueError, "size exceeds the buffer");
        return NULL;
    }
    /* a memoryview keeps a buffer object alive and unresizable while it
     * is registered */
    if (PyLong_Check(obj)) {
        held = obj;
        Py_INCREF(held);
    } else {
        held = PyMemoryView_FromObject(obj);
    }
    key = PyLong_FromUnsignedLongLong(addr);
    if (held == NULL || key == NULL || mfp_pool_enter(self) != 0) {
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_register(self->bm, (void *)(uintptr_t)addr, size);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    if (st != MF_OK) {
        pyh_raise(st, NULL);
        goto fail;
    }
    if (PyDict_SetItem(self->registered, key, held) != 0) {
        mf_bm_unregister(self->bm, (void *)(uintptr_t)addr);
        goto fail;
    }
    Py_DECREF(held);
    return key;
fail:
    Py_XDECREF(held);
    Py_XDECREF(key);
    return NULL;
}

static PyObject *mfp_pool_unregister(mfp_pool_t *self, PyObject *obj)
{
    pyh_views_t vs = {0};
    uint64_t addr;
    size_t len;
    mf_status_t st;
    PyObject *key;

    if (mfp_side(&vs, obj, 0, &addr, &len) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    pyh_views_release(&vs);
    if (mfp_pool_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_bm_unregister(self->bm, (void *)(uintptr_t)addr);
    Py_END_ALLOW_THREADS
    mfp_pool_leave(self);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    key = PyLong_FromUnsignedLongLong(addr);
    if (key == NULL) {
        return NULL;
    }
    if (PyDict_DelItem(self->registered, key) != 0) {
        PyErr_Clear(); /* registered by address: nothing kept */
    }
    Py_DECREF(key);
    Py_RETURN_NONE;
}

static PyObject *mfp_pool_closed(mfp_pool_t *self, void *unused)
{
    return PyBool_FromLong(self->bm == NULL);
}

static PyMethodDef mfp_pool_methods[] = {
    {"join", (PyCFunction)mfp_pool_join, METH_NOARGS,
     "join()\n--\n\nPublishes this rank's segment and maps joined peers."},
    {"leave", (PyCFunction)mfp_pool_leave_m, METH_NOARGS,
     "leave()\n--\n\nWithdraws this rank's segment."},
    {"destroy", (PyCFunction)mfp_pool_destroy, METH_NOARGS,
     "destroy()\n--\n\nReleases the pool (idempotent).  Later calls raise "
     "MF_ERR_STATE; MF_ERR_BUSY while a call or an asynchronous copy of "
     "it is not finished."},
    {"gva_of_rank", (PyCFunction)mfp_pool_gva_of_rank, METH_VARARGS,
     "gva_of_rank(rank, mem_type=MemType.HOST)\n--\n\nGlobal address (int) "
     "of the start of rank's segment; MF_ERR_OUT_OF_RANGE if none."},
    {"rank_of_gva", (PyCFunction)mfp_pool_rank_of_gva, METH_O,
     "rank_of_gva(gva)\n--\n\nThe rank owning a global address."},
    {"rank_wait", (PyCFunction)mfp_pool_rank_wait, METH_VARARGS,
     "rank_wait(rank, timeout_ms=-1)\n--\n\nWaits until rank's segment is "
     "addressable from here (mf_bm_rank_wait): raises MF_ERR_TIMEOUT, "
     "MF_ERR_UNREACHABLE."},
    {"rank_joined", (PyCFunction)mfp_pool_rank_joined, METH_O,
     "rank_joined(rank)\n--\n\nWhether rank's segment is joined and "
     "reachable from here."},
    {"local_size", (PyCFunction)mfp_pool_local_size, METH_VARARGS,
     "local_size(mem_type=MemType.HOST)\n--\n\nSize of this rank's own "
     "segment."},
    {"copy", PYH_KW(mfp_pool_copy), METH_VARARGS | METH_KEYWORDS,
     "copy(src, dst, size=None, direction=CopyDir.AUTO)\n--\n\nCopies size "
     "bytes.  src and dst are int addresses (GVAs or local pointers) or "
     "buffer-protocol objects (dst writable); size defaults to the "
     "buffers' length."},
    {"copy_batch", PYH_KW(mfp_pool_copy_batch), METH_VARARGS | METH_KEYWORDS,
     "copy_batch(pieces, direction=CopyDir.AUTO)\n--\n\nCopies many pieces "
     "(src, dst[, size]) in one call.  On failure raises MfError whose "
     ".results holds the status of every piece."},
    {"copy_async", PYH_KW(mfp_pool_copy_async), METH_VARARGS | METH_KEYWORDS,
     "copy_async(src, dst, size=None, direction=CopyDir.AUTO)\n--\n\nStarts "
     "a copy; returns a CopyRequest (wait() / test())."},
    {"copy_batch_async", PYH_KW(mfp_pool_copy_batch_async),
     METH_VARARGS | METH_KEYWORDS,
     "copy_batch_async(pieces, direction=CopyDir.AUTO)\n--\n\nStarts a "
     "batch copy; returns a CopyRequest."},
    {"register", (PyCFunction)mfp_pool_register, METH_VARARGS,
     "register(buffer_or_address, size=None)\n--\n\nRegisters user memory "
     "with the transports (a buffer object is kept alive until "
     "unregister()).  Returns its address."},
    {"unregister", (PyCFunction)mfp_pool_unregister, METH_O,
     "unregister(buffer_or_address)\n--\n\nUndoes register()."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mfp_pool_getset[] = {
    {"closed", (getter)mfp_pool_closed, NULL, "True once destroy() ran.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject mfp_pool_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._memfabric.Pool",
    .tp_basicsize = sizeof(mfp_pool_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Pool(id, local_dram_size, max_dram_per_rank=0, flags=0, "
              "local_hbm_size=0, max_hbm_per_rank=0)\n--\n"
              "\nCreates BM pool `id` (mf_bm_create; collective across the "
              "first world_size ranks unless flags has CREATE_ELASTIC).  "
              "Needs init() and bm_init() first.",
    .tp_new = mfp_pool_new,
    .tp_dealloc = (destructor)mfp_pool_dealloc,
    .tp_methods = mfp_pool_methods,
    .tp_getset = mfp_pool_getset,
};

/* ------------------------------------------------------- store client */

typedef struct mfp_store {
    PyObject_HEAD mf_store_t *store;
    int busy;
} mfp_store_t;

static int mfp_store_enter(mfp_store_t *self)
{
    if (self->store == NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    self->busy++;
    return 0;
}

static int mfp_store_init(mfp_store_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"url", "connect_timeout_ms", "op_timeout_ms",
                             "heartbeat_ms", NULL};
    const char *url;
    mf_store_config_t cfg;
    mf_store_t *store = NULL;
    mf_status_t st;

    mf_store_config_init(&cfg);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|III", kwlist, &url,
                                     &cfg.connect_timeout_ms,
                                     &cfg.op_timeout_ms, &cfg.heartbeat_ms)) {
        return -1;
    }
    if (self->store != NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_store_connect(url, &cfg, &store);
    Py_END_ALLOW_THREADS
    if (st != MF_OK) {
        pyh_raise(st, NULL);
        return -1;
    }
    self->store = store;
    return 0;
}

static void mfp_store_close_now(mfp_store_t *self)
{
    mf_store_t *store = self->store;

    self->store = NULL;
    if (store != NULL) {
        Py_BEGIN_ALLOW_THREADS
            mf_store_close(store);
        Py_END_ALLOW_THREADS
    }
}

static void mfp_store_dealloc(mfp_store_t *self)
{
    mfp_store_close_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *mfp_store_close(mfp_store_t *self, PyObject *unused)
{
    if (self->busy > 0) {
        return pyh_raise(MF_ERR_BUSY, NULL);
    }
    mfp_store_close_now(self);
    Py_RETURN_NONE;
}

/* A store key: str or bytes without NUL (the object is held by args). */
#define MFP_STORE_CALL(self, expr, st)                                         \
    do {                                                                       \
        if (mfp_store_enter(self) != 0) {                                      \
            goto fail;                                                         \
        }                                                                      \
        Py_BEGIN_ALLOW_THREADS                                                 \
            st = (expr);                                                       \
            Py_END_ALLOW_THREADS(self)->busy--;                                \
    } while (0)

static PyObject *mfp_store_set(mfp_store_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "value", "ephemeral", NULL};
    PyObject *key_obj;
    Py_buffer value = {0};
    int ephemeral = 0;
    const char *key;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oy*|p", kwlist, &key_obj,
                                     &value, &ephemeral)) {
        return NULL;
    }
    if (pyh_key(key_obj, &key) != 0) {
        goto fail;
    }
    MFP_STORE_CALL(self,
                   mf_store_set(self->store, key, value.buf, (size_t)value.len,
                                ephemeral ? MF_STORE_EPHEMERAL : 0),
                   st);
    PyBuffer_Release(&value);
    return mfp_check(st);
fail:
    PyBuffer_Release(&value);
    return NULL;
}

static PyObject *mfp_store_get(mfp_store_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "timeout_ms", NULL};
    PyObject *key_obj, *res;
    unsigned timeout_ms = 0;
    const char *key;
    void *value = NULL;
    size_t len = 0;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|I", kwlist, &key_obj,
                                     &timeout_ms) ||
        pyh_key(key_obj, &key) != 0) {
        return NULL;
    }
    MFP_STORE_CALL(
        self, mf_store_get(self->store, key, timeout_ms, &value, &len), st);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    res = PyBytes_FromStringAndSize(value, (Py_ssize_t)len);
    free(value);
    return res;
fail:
    return NULL;
}

static PyObject *mfp_store_add(mfp_store_t *self, PyObject *args)
{
    PyObject *key_obj;
    long long delta = 1;
    int64_t result = 0;
    const char *key;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTuple(args, "O|L", &key_obj, &delta) ||
        pyh_key(key_obj, &key) != 0) {
        return NULL;
    }
    MFP_STORE_CALL(self, mf_store_add(self->store, key, delta, &result), st);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromLongLong(result);
fail:
    return NULL;
}

static PyObject *mfp_store_append(mfp_store_t *self, PyObject *args)
{
    PyObject *key_obj;
    Py_buffer value = {0};
    const char *key;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTuple(args, "Oy*", &key_obj, &value)) {
        return NULL;
    }
    if (pyh_key(key_obj, &key) != 0) {
        goto fail;
    }
    MFP_STORE_CALL(
        self, mf_store_append(self->store, key, value.buf, (size_t)value.len),
        st);
    PyBuffer_Release(&value);
    return mfp_check(st);
fail:
    PyBuffer_Release(&value);
    return NULL;
}

static PyObject *mfp_store_cas(mfp_store_t *self, PyObject *args)
{
    PyObject *key_obj, *expected_obj, *res;
    Py_buffer expected = {0}, desired = {0};
    const char *key;
    void *cur = NULL;
    size_t cur_len = 0;
    mf_status_t st = MF_OK;
    int have_expected;

    if (!PyArg_ParseTuple(args, "OOy*", &key_obj, &expected_obj, &desired)) {
        return NULL;
    }
    have_expected = expected_obj != Py_None;
    if (pyh_key(key_obj, &key) != 0 ||
        (have_expected &&
         PyObject_GetBuffer(expected_obj, &expected, PyBUF_SIMPLE) != 0)) {
        have_expected = 0;
        goto fail;
    }
    MFP_STORE_CALL(
        self,
        mf_store_cas(self->store, key, have_expected ? expected.buf : NULL,
                     have_expected ? (size_t)expected.len : 0, desired.buf,
                     (size_t)desired.len, &cur, &cur_len),
        st);
    if (have_expected) {
        PyBuffer_Release(&expected);
    }
    PyBuffer_Release(&desired);
    if (st == MF_OK) {
        free(cur);
        return Py_BuildValue("(OO)", Py_True, Py_None);
    }
    if (st == MF_ERR_MISMATCH) {
        if (cur == NULL) {
            return Py_BuildValue("(OO)", Py_False, Py_None);
        }
        res = Py_BuildValue("(Oy#)", Py_False, (const char *)cur,
                            (Py_ssize_t)cur_len);
        free(cur);
        return res;
    }
    free(cur);
    return pyh_raise(st, NULL);
fail:
    if (have_expected) {
        PyBuffer_Release(&expected);
    }
    PyBuffer_Release(&desired);
    return NULL;
}

static PyObject *mfp_store_remove(mfp_store_t *self, PyObject *key_obj)
{
    const char *key;
    mf_status_t st = MF_OK;

    if (pyh_key(key_obj, &key) != 0) {
        return NULL;
    }
    MFP_STORE_CALL(self, mf_store_remove(self->store, key), st);
    return mfp_check(st);
fail:
    return NULL;
}

static PyObject *mfp_store_barrier(mfp_store_t *self, PyObject *args,
                                   PyObject *kw)
{
    static char *kwlist[] = {"name", "count", "timeout_ms", NULL};
    const char *name;
    unsigned count, timeout_ms = 60000;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "sI|I", kwlist, &name, &count,
                                     &timeout_ms)) {
        return NULL;
    }
    MFP_STORE_CALL(self, mf_store_barrier(self->store, name, count, timeout_ms),
                   st);
    return mfp_check(st);
fail:
    return NULL;
}

static PyObject *mfp_store_allgather(mfp_store_t *self, PyObject *args,
                                     PyObject *kw)
{
    static char *kwlist[] = {"name", "index",      "count",
                             "data", "timeout_ms", NULL};
    const char *name;
    unsigned index, count, timeout_ms = 60000;
    Py_buffer data = {0};
    PyObject *out = NULL, *list = NULL;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "sIIy*|I", kwlist, &name, &index,
                                     &count, &data, &timeout_ms)) {
        return NULL;
    }
    if (count == 0 || index >= count) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= index < count");
        goto fail;
    }
    if (data.len > 0 &&
        (size_t)count > (size_t)PY_SSIZE_T_MAX / (size_t)data.len) {
        PyErr_SetString(PyExc_OverflowError, "count * len(data) too large");
        goto fail;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count * data.len);
    if (out == NULL) {
        goto fail;
    }
    MFP_STORE_CALL(self,
                   mf_store_allgather(self->store, name, index, count, data.buf,
                                      (size_t)data.len, PyBytes_AS_STRING(out),
                                      timeout_ms),
                   st);
    if (st != MF_OK) {
        pyh_raise(st, NULL);
        goto fail;
    }
    list = PyList_New(count);
    for (unsigned i = 0; list != NULL && i < count; i++) {
        PyObject *item = PyBytes_FromStringAndSize(
            PyBytes_AS_STRING(out) + (Py_ssize_t)i * data.len, data.len);

        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    Py_DECREF(out);
    PyBuffer_Release(&data);
    return list;
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&data);
    return NULL;
}

static PyObject *mfp_store_rank_join(mfp_store_t *self, PyObject *args)
{
    const char *group;
    unsigned world, rank = MF_RANK_AUTO;
    uint32_t got = 0;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTuple(args, "sI|I", &group, &world, &rank)) {
        return NULL;
    }
    MFP_STORE_CALL(
        self, mf_store_rank_join(self->store, group, world, rank, &got), st);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromUnsignedLong(got);
fail:
    return NULL;
}

static PyObject *mfp_store_rank_leave(mfp_store_t *self, PyObject *args)
{
    const char *group;
    unsigned rank;
    mf_status_t st = MF_OK;

    if (!PyArg_ParseTuple(args, "sI", &group, &rank)) {
        return NULL;
    }
    MFP_STORE_CALL(self, mf_store_rank_leave(self->store, group, rank), st);
    return mfp_check(st);
fail:
    return NULL;
}

static PyObject *mfp_store_rank_list(mfp_store_t *self, PyObject *args)
{
    const char *group;
    uint32_t ranks[4096], count = 0;
    mf_status_t st = MF_OK;
    PyObject *list;

    if (!PyArg_ParseTuple(args, "s", &group)) {
        return NULL;
    }
    MFP_STORE_CALL(
        self, mf_store_rank_list(self->store, group, ranks, 4096, &count), st);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    if (count > 4096) {
        count = 4096;
    }
    list = PyList_New(count);
    for (uint32_t i = 0; list != NULL && i < count; i++) {
        PyObject *item = PyLong_FromUnsignedLong(ranks[i]);

        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
fail:
    return NULL;
}

static PyObject *mfp_store_closed(mfp_store_t *self, void *unused)
{
    return PyBool_FromLong(self->store == NULL);
}

static PyMethodDef mfp_store_methods[] = {
    {"close", (PyCFunction)mfp_store_close, METH_NOARGS,
     "close()\n--\n\nEnds the session (ephemeral keys and ranks go)."},
    {"set", PYH_KW(mfp_store_set), METH_VARARGS | METH_KEYWORDS,
     "set(key, value, ephemeral=False)\n--\n\nStores bytes under key."},
    {"get", PYH_KW(mfp_store_get), METH_VARARGS | METH_KEYWORDS,
     "get(key, timeout_ms=0)\n--\n\nThe value (bytes); waits up to "
     "timeout_ms for an absent key (MF_ERR_NOT_FOUND with 0, else "
     "MF_ERR_TIMEOUT)."},
    {"add", (PyCFunction)mfp_store_add, METH_VARARGS,
     "add(key, delta=1)\n--\n\nAtomically adds delta to the decimal integer "
     "at key (absent: 0); returns the new value."},
    {"append", (PyCFunction)mfp_store_append, METH_VARARGS,
     "append(key, value)\n--\n\nAppends bytes to the value."},
    {"cas", (PyCFunction)mfp_store_cas, METH_VARARGS,
     "cas(key, expected, desired)\n--\n\nCompare-and-swap (expected None: "
     "the key must be absent).  Returns (True, None) when stored, else "
     "(False, current value or None)."},
    {"remove", (PyCFunction)mfp_store_remove, METH_O,
     "remove(key)\n--\n\nRemoves key (MF_ERR_NOT_FOUND if absent)."},
    {"barrier", PYH_KW(mfp_store_barrier), METH_VARARGS | METH_KEYWORDS,
     "barrier(name, count, timeout_ms=60000)\n--\n\nWaits until count "
     "participants reached barrier name."},
    {"allgather", PYH_KW(mfp_store_allgather), METH_VARARGS | METH_KEYWORDS,
     "allgather(name, index, count, data, timeout_ms=60000)\n--\n\nEvery "
     "participant gives len(data) bytes (same length everywhere); returns "
     "the list of all contributions by index."},
    {"rank_join", (PyCFunction)mfp_store_rank_join, METH_VARARGS,
     "rank_join(group, world_size, rank=RANK_AUTO)\n--\n\nTakes a rank of "
     "group; returns it."},
    {"rank_leave", (PyCFunction)mfp_store_rank_leave, METH_VARARGS,
     "rank_leave(group, rank)\n--\n\nGives a rank back."},
    {"rank_list", (PyCFunction)mfp_store_rank_list, METH_VARARGS,
     "rank_list(group)\n--\n\nThe live ranks of group, ascending."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mfp_store_getset[] = {
    {"closed", (getter)mfp_store_closed, NULL, "True once close() ran.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject mfp_store_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._memfabric.Store",
    .tp_basicsize = sizeof(mfp_store_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Store(url, connect_timeout_ms=5000, op_timeout_ms=10000, "
              "heartbeat_ms=1000)\n--\n\nA config store client session "
              "(url 'tcp://host:port').",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)mfp_store_init,
    .tp_dealloc = (destructor)mfp_store_dealloc,
    .tp_methods = mfp_store_methods,
    .tp_getset = mfp_store_getset,
};

/* ------------------------------------------------------- store server */

typedef struct mfp_server {
    PyObject_HEAD mf_store_server_t *server;
} mfp_server_t;

static int mfp_server_init(mfp_server_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"host", "port", "settings", NULL};
    const char *host = NULL;
    unsigned port = 0;
    PyObject *settings = NULL;
    mf_store_server_config_t cfg;
    mf_store_server_t *server = NULL;
    mf_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zIO", kwlist, &host, &port,
                                     &settings)) {
        return -1;
    }
    if (self->server != NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    if (port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port must be 0..65535");
        return -1;
    }
    mf_store_server_config_init(&cfg);
    if (host != NULL) {
        if (strlen(host) >= sizeof(cfg.host)) {
            PyErr_SetString(PyExc_ValueError, "host too long");
            return -1;
        }
        snprintf(cfg.host, sizeof(cfg.host), "%s", host);
    }
    cfg.port = (uint16_t)port;
    if (mfp_apply(settings, &cfg, mfp_server_set) != 0) {
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_store_server_start(&cfg, &server);
    Py_END_ALLOW_THREADS
    if (st != MF_OK) {
        pyh_raise(st, NULL);
        return -1;
    }
    self->server = server;
    return 0;
}

static void mfp_server_stop_now(mfp_server_t *self)
{
    mf_store_server_t *server = self->server;

    self->server = NULL;
    if (server != NULL) {
        Py_BEGIN_ALLOW_THREADS
            mf_store_server_stop(server);
        Py_END_ALLOW_THREADS
    }
}

static void mfp_server_dealloc(mfp_server_t *self)
{
    mfp_server_stop_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *mfp_server_stop(mfp_server_t *self, PyObject *unused)
{
    mfp_server_stop_now(self);
    Py_RETURN_NONE;
}

static PyObject *mfp_server_port(mfp_server_t *self, void *unused)
{
    if (self->server == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    return PyLong_FromLong(mf_store_server_port(self->server));
}

static PyMethodDef mfp_server_methods[] = {
    {"stop", (PyCFunction)mfp_server_stop, METH_NOARGS,
     "stop()\n--\n\nStops the server (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mfp_server_getset[] = {
    {"port", (getter)mfp_server_port, NULL, "The port it listens on.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject mfp_server_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._memfabric.StoreServer",
    .tp_basicsize = sizeof(mfp_server_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "StoreServer(host='127.0.0.1', port=0, settings=None)\n--\n\n"
              "A config store server embedded in this process (settings: "
              "mf-store keys).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)mfp_server_init,
    .tp_dealloc = (destructor)mfp_server_dealloc,
    .tp_methods = mfp_server_methods,
    .tp_getset = mfp_server_getset,
};

/* ------------------------------------------------------------ module */

static PyObject *mfp_buffer_address(PyObject *mod, PyObject *args)
{
    PyObject *obj, *res;
    int writable = 0;
    Py_buffer view;

    if (!PyArg_ParseTuple(args, "O|p", &obj, &writable) ||
        PyObject_GetBuffer(obj, &view,
                           PyBUF_C_CONTIGUOUS |
                               (writable ? PyBUF_WRITABLE : 0)) != 0) {
        return NULL;
    }
    res = Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)view.buf,
                        view.len);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef mfp_module_methods[] = {
    {"init", mfp_init, METH_NOARGS,
     "init()\n--\n\nInitializes the library (reference counted)."},
    {"uninit", mfp_uninit, METH_NOARGS, "uninit()\n--\n\nPairs one init()."},
    {"version", mfp_version, METH_NOARGS,
     "version()\n--\n\nThe library version, 'major.minor.patch'."},
    {"status_name", mfp_status_name, METH_O,
     "status_name(status)\n--\n\nName of a MemFabric status."},
    {"status_str", mfp_status_str, METH_O,
     "status_str(status)\n--\n\nDescription of a MemFabric status."},
    {"log_set_level", mfp_log_set_level, METH_O,
     "log_set_level(level)\n--\n\nSets the library's log level (LogLevel)."},
    {"log_get_level", mfp_log_get_level, METH_NOARGS,
     "log_get_level()\n--\n\nThe library's log level."},
    {"bm_config_help", mfp_bm_config_help, METH_NOARGS,
     "bm_config_help()\n--\n\nEvery BM configuration key and its default."},
    {"bm_init", PYH_KW(mfp_bm_init), METH_VARARGS | METH_KEYWORDS,
     "bm_init(store_url, world_size, rank=RANK_AUTO, settings=None, "
     "config_file=None)\n--\n\nConnects to the config store and takes a "
     "rank.  settings are BM keys (dict or pairs) over the defaults, the "
     "MF_* environment and config_file."},
    {"device_ready", mfp_device_ready, METH_NOARGS,
     "device_ready()\n--\n\nWhether this process can have device memory "
     "(the CUDA driver loads and has a device)."},
    {"smem_status", mfp_smem_status, METH_O,
     "smem_status(status)\n--\n\nUpstream MemFabric's SM_* code of a "
     "status (0 stays 0)."},
    {"bm_uninit", mfp_bm_uninit, METH_NOARGS,
     "bm_uninit()\n--\n\nUndoes bm_init()."},
    {"bm_rank_id", mfp_bm_rank_id, METH_NOARGS,
     "bm_rank_id()\n--\n\nThis process's rank (MF_ERR_STATE before "
     "bm_init)."},
    {"bm_world_size", mfp_bm_world_size, METH_NOARGS,
     "bm_world_size()\n--\n\nThe world size given to bm_init()."},
    {"buffer_address", mfp_buffer_address, METH_VARARGS,
     "buffer_address(obj, writable=False)\n--\n\n(address, nbytes) of a "
     "C-contiguous buffer-protocol object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mfp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memfabric._memfabric",
    .m_doc = "MemFabric (libmemfabric) for the memfabric package.",
    .m_size = -1,
    .m_methods = mfp_module_methods,
};

PyMODINIT_FUNC PyInit__memfabric(void)
{
    PyObject *m;

    if (pyh_errors_init("MfError", mfp_name, mfp_str) != 0 ||
        PyType_Ready(&mfp_req_type) != 0 || PyType_Ready(&mfp_pool_type) != 0 ||
        PyType_Ready(&mfp_store_type) != 0 ||
        PyType_Ready(&mfp_server_type) != 0) {
        return NULL;
    }
    m = PyModule_Create(&mfp_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&mfp_req_type);
    Py_INCREF(&mfp_pool_type);
    Py_INCREF(&mfp_store_type);
    Py_INCREF(&mfp_server_type);
    if (PyModule_AddObject(m, "CopyRequest", (PyObject *)&mfp_req_type) ||
        PyModule_AddObject(m, "Pool", (PyObject *)&mfp_pool_type) ||
        PyModule_AddObject(m, "Store", (PyObject *)&mfp_store_type) ||
        PyModule_AddObject(m, "StoreServer", (PyObject *)&mfp_server_type) ||
        PyModule_AddObject(m, "RANK_AUTO",
                           PyLong_FromUnsignedLong(MF_RANK_AUTO)) ||
        PyModule_AddIntConstant(m, "CREATE_ELASTIC", MF_BM_CREATE_ELASTIC)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
