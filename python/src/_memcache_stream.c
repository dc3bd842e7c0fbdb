/*
 * The streaming calls of memfabric._memcache's Client (mmc.h): puts in
 * three steps (alloc_batch, copy_batch, write_finish_batch), explicit
 * leases with a duration (lease_batch, lease_release_batch) and
 * remove_all.  Batch calls return the status of every item (0 = MMC_OK),
 * with the object's info where the call gives one; the GIL is released
 * around every library call.
 */
#include "_memcache.h"

/* count statuses (int) of a sequence into a new array; NULL seq: none. */
static int mc_statuses(PyObject *seq, size_t count, int **out_p)
{
    PyObject *t;
    int *out;

    *out_p = NULL;
    if (seq == NULL || seq == Py_None) {
        return 0;
    }
    t = pyh_tuple(seq, "written");
    if (t == NULL) {
        return -1;
    }
    if ((size_t)PyTuple_GET_SIZE(t) != count) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_ValueError, "written must have one status per "
                                          "key");
        return -1;
    }
    out = PyMem_Calloc(count > 0 ? count : 1, sizeof(*out));
    if (out == NULL) {
        Py_DECREF(t);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(t, (Py_ssize_t)i));

        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(t);
            PyMem_Free(out);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(t);
    *out_p = out;
    return 0;
}

static PyObject *mc_client_alloc_batch(mc_client_t *self, PyObject *args,
                                       PyObject *kw)
{
    static char *kwlist[] = {"keys",      "sizes", "replicas", "flags",
                             "preferred", "media", NULL};
    PyObject *keys, *sizes, *replicas = NULL, *preferred = NULL, *media = NULL;
    PyObject *kt, *st = NULL, *res = NULL;
    mmc_obj_info_t *infos = NULL;
    size_t *csizes = NULL, count;
    unsigned flags = 0;
    mmc_put_opts_t opts;
    int *results = NULL;
    const char **ck;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OIOO", kwlist, &keys, &sizes,
                                     &replicas, &flags, &preferred, &media) ||
        mc_opts(replicas, flags, preferred, media, &opts) != 0 ||
        mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    st = pyh_tuple(sizes, "sizes");
    if (st == NULL) {
        goto out;
    }
    if ((size_t)PyTuple_GET_SIZE(st) != count) {
        PyErr_SetString(PyExc_ValueError, "sizes must have one size per key");
        goto out;
    }
    csizes = PyMem_Calloc(count > 0 ? count : 1, sizeof(*csizes));
    infos = PyMem_Calloc(count > 0 ? count : 1, sizeof(*infos));
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (csizes == NULL || infos == NULL || results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (pyh_size(PyTuple_GET_ITEM(st, (Py_ssize_t)i), &csizes[i]) != 0) {
            goto out;
        }
    }
    mmc_obj_info_init(infos, count);
    if (mc_enter(self) != 0) {
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_alloc_batch(self->mmc, ck, csizes, count, &opts, infos, results);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    res = mc_infos_list(results, infos, count);
out:
    PyMem_Free(csizes);
    PyMem_Free(infos);
    PyMem_Free(results);
    PyMem_Free(ck);
    Py_XDECREF(st);
    Py_DECREF(kt);
    return res;
}

static PyObject *mc_client_write_finish_batch(mc_client_t *self, PyObject *args,
                                              PyObject *kw)
{
    static char *kwlist[] = {"keys", "written", NULL};
    PyObject *keys, *written = NULL, *kt, *res = NULL;
    int *cw = NULL, *results = NULL;
    const char **ck;
    size_t count;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O", kwlist, &keys,
                                     &written) ||
        mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    if (mc_statuses(written, count, &cw) != 0) {
        goto out;
    }
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    if (mc_enter(self) != 0) {
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_write_finish_batch(self->mmc, ck, cw, count, results);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    res = pyh_int_list(results, count);
out:
    PyMem_Free(cw);
    PyMem_Free(results);
    PyMem_Free(ck);
    Py_DECREF(kt);
    return res;
}

/* copy_batch(pieces, direction): pieces of (src, dst, size). */
static PyObject *mc_client_copy_batch(mc_client_t *self, PyObject *args)
{
    PyObject *pieces, *t, *res = NULL;
    mf_copy_piece_t *cp = NULL;
    mf_status_t *results = NULL;
    int dir;
    size_t count;

    if (!PyArg_ParseTuple(args, "Oi", &pieces, &dir)) {
        return NULL;
    }
    if (dir < 0 || dir >= MF_COPY_DIR_MAX) {
        PyErr_Format(PyExc_ValueError, "direction must be 0..%d",
                     MF_COPY_DIR_MAX - 1);
        return NULL;
    }
    t = pyh_tuple(pieces, "pieces");
    if (t == NULL) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(t);
    cp = PyMem_Calloc(count > 0 ? count : 1, sizeof(*cp));
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (cp == NULL || results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *p = PyTuple_GET_ITEM(t, (Py_ssize_t)i);

        if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "a piece is a (src, dst, size) tuple");
            goto out;
        }
        if (pyh_addr(PyTuple_GET_ITEM(p, 0), &cp[i].src) != 0 ||
            pyh_addr(PyTuple_GET_ITEM(p, 1), &cp[i].dst) != 0 ||
            pyh_size(PyTuple_GET_ITEM(p, 2), &cp[i].size) != 0) {
            goto out;
        }
    }
    if (mc_enter(self) != 0) {
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        results[i] = MF_ERR_INVALID; /* kept where the call fails early */
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_copy_batch(self->mmc, cp, count, (mf_copy_dir_t)dir, results);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    res = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; res != NULL && i < count; i++) {
        PyObject *v = PyLong_FromLong((long)results[i]);

        if (v == NULL) {
            Py_CLEAR(res);
            break;
        }
        PyList_SET_ITEM(res, (Py_ssize_t)i, v);
    }
out:
    PyMem_Free(cp);
    PyMem_Free(results);
    Py_DECREF(t);
    return res;
}

static PyObject *mc_client_lease_batch(mc_client_t *self, PyObject *args)
{
    PyObject *keys, *kt, *res = NULL;
    mmc_obj_info_t *infos;
    unsigned long ttl;
    int *results;
    const char **ck;
    size_t count;

    if (!PyArg_ParseTuple(args, "Ok", &keys, &ttl)) {
        return NULL;
    }
    if (ttl == 0 || ttl > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "ttl_ms must be 1..2^32-1");
        return NULL;
    }
    if (mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    infos = PyMem_Calloc(count > 0 ? count : 1, sizeof(*infos));
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (infos == NULL || results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    mmc_obj_info_init(infos, count);
    if (mc_enter(self) != 0) {
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_lease_batch(self->mmc, ck, count, (uint32_t)ttl, infos, results);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    res = mc_infos_list(results, infos, count);
out:
    PyMem_Free(infos);
    PyMem_Free(results);
    PyMem_Free(ck);
    Py_DECREF(kt);
    return res;
}

static PyObject *mc_client_lease_release_batch(mc_client_t *self,
                                               PyObject *keys)
{
    return mc_keys_call(self, keys, mmc_lease_release_batch);
}

static PyObject *mc_client_remove_all(mc_client_t *self, PyObject *unused)
{
    mmc_status_t st;
    uint64_t n = 0;

    (void)unused;
    if (mc_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mmc_remove_all(self->mmc, &n);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromUnsignedLongLong(n);
}

PyMethodDef mc_stream_methods[] = {
    {"alloc_batch", PYH_KW(mc_client_alloc_batch), METH_VARARGS | METH_KEYWORDS,
     "alloc_batch(keys, sizes, replicas=None, flags=0, preferred=None, "
     "media=None)\n--\n\nAllocates objects to be written by the caller: "
     "a list of (status, (size, [(rank, media, gva), ...]) or None).  Fill "
     "every replica's gva (copy_batch), then write_finish_batch."},
    {"write_finish_batch", PYH_KW(mc_client_write_finish_batch),
     METH_VARARGS | METH_KEYWORDS,
     "write_finish_batch(keys, written=None)\n--\n\nCommits each allocated "
     "key whose written status is 0 (None: all) and aborts the others; the "
     "status of each (MMC_ERR_NOT_FOUND: not allocated here)."},
    {"copy_batch", (PyCFunction)mc_client_copy_batch, METH_VARARGS,
     "copy_batch(pieces, direction)\n--\n\nCopies (src, dst, size) pieces "
     "between this process's memory and the pool's GVAs in one call "
     "(direction: an mf_copy_dir_t value, memfabric.CopyDir); the status of "
     "each piece."},
    {"lease_batch", (PyCFunction)mc_client_lease_batch, METH_VARARGS,
     "lease_batch(keys, ttl_ms)\n--\n\nRead leases of ttl_ms on committed "
     "objects: a list of (status, info or None); MMC_ERR_BUSY while a key "
     "is being written."},
    {"lease_release_batch", (PyCFunction)mc_client_lease_release_batch, METH_O,
     "lease_release_batch(keys)\n--\n\nReleases this process's leases of "
     "each key; the status of each."},
    {"remove_all", (PyCFunction)mc_client_remove_all, METH_NOARGS,
     "remove_all()\n--\n\nRemoves every committed object of the pool; how "
     "many."},
    {NULL, NULL, 0, NULL},
};
