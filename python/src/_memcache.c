/*
 * memfabric._memcache: the MemCache client (libmemcache, public mmc_* API
 * only) as a CPython extension.
 *
 * One type, Client, wraps one mmc_t.  Single-object calls raise
 * memfabric.MmcError on failure; batch calls return a list with the status
 * of every item (0 = MMC_OK) and raise only for bad Python arguments.
 * Memory is given as buffer-protocol objects (bytes, bytearray,
 * memoryview, NumPy arrays; writable ones where data is read into them),
 * as (address, size[, mem]) tuples of the caller's raw memory, or as
 * device arrays exporting __cuda_array_interface__ (PyTorch CUDA tensors,
 * CuPy arrays), whose device memory goes to the library as MMC_MEM_DEVICE.
 *
 * Invariants: the GIL is released around every libmemcache call that may
 * block; the buffer views and key strings such a call uses are held by
 * this module until it returned; close() refuses (MF_ERR_BUSY) while
 * another thread is inside a call of the same client, and every call after
 * close() raises MF_ERR_STATE.  Device memory is never dereferenced here:
 * only its address and length reach the library.
 */
#include "_memcache.h"

#include <compat/mmc_client.h>
#include <strings.h>

static const char *mc_name(int st)
{
    return mmc_status_name(st);
}

static const char *mc_str(int st)
{
    return mmc_status_str(st);
}

/* Marks a call in flight; raises MF_ERR_STATE when the client is closed. */
int mc_enter(mc_client_t *self)
{
    if (self->mmc == NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    self->busy++;
    return 0;
}

void mc_leave(mc_client_t *self)
{
    self->busy--;
}

/* --------------------------------------------------------- put options */

/* The media of a put: "dram", "hbm" (any case) or MMC_MEDIA_*. */
static int mc_media(PyObject *media, mmc_put_opts_t *opts)
{
    const char *name;
    long v;

    if (media == NULL || media == Py_None) {
        return 0;
    }
    if (PyUnicode_Check(media)) {
        name = PyUnicode_AsUTF8(media);
        if (name == NULL) {
            return -1;
        }
        if (strcasecmp(name, "dram") == 0) {
            opts->media = MMC_MEDIA_DRAM;
        } else if (strcasecmp(name, "hbm") == 0) {
            opts->media = MMC_MEDIA_HBM;
        } else {
            PyErr_Format(PyExc_ValueError,
                         "media must be 'dram' or 'hbm', not '%s'", name);
            return -1;
        }
        return 0;
    }
    v = PyLong_AsLong(media);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v != MMC_MEDIA_DRAM && v != MMC_MEDIA_HBM) {
        PyErr_Format(PyExc_ValueError,
                     "media must be MEDIA_DRAM (%d) or "
                     "MEDIA_HBM (%d)",
                     MMC_MEDIA_DRAM, MMC_MEDIA_HBM);
        return -1;
    }
    opts->media = (uint8_t)v;
    return 0;
}

int mc_opts(PyObject *replicas, unsigned flags, PyObject *preferred,
            PyObject *media, mmc_put_opts_t *opts)
{
    mmc_put_opts_init(opts);
    opts->flags = flags;
    if (mc_media(media, opts) != 0) {
        return -1;
    }
    if (replicas != NULL && replicas != Py_None) {
        long v = PyLong_AsLong(replicas);

        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (v < 0 || v > MMC_MAX_REPLICAS) {
            PyErr_Format(PyExc_ValueError, "replicas must be 0..%d",
                         MMC_MAX_REPLICAS);
            return -1;
        }
        opts->replicas = (uint32_t)v;
    }
    if (preferred != NULL && preferred != Py_None) {
        PyObject *t = pyh_tuple(preferred, "preferred");
        Py_ssize_t n;

        if (t == NULL) {
            return -1;
        }
        n = PyTuple_GET_SIZE(t);
        if (n > MMC_MAX_REPLICAS) {
            Py_DECREF(t);
            PyErr_Format(PyExc_ValueError, "at most %d preferred ranks",
                         MMC_MAX_REPLICAS);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned long r = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(t, i));

            if (r == (unsigned long)-1 && PyErr_Occurred()) {
                Py_DECREF(t);
                return -1;
            }
            if (r > UINT32_MAX) {
                Py_DECREF(t);
                PyErr_SetString(PyExc_ValueError, "a rank is a uint32");
                return -1;
            }
            opts->preferred[i] = (uint32_t)r;
        }
        opts->npreferred = (uint32_t)n;
        Py_DECREF(t);
    }
    return 0;
}

/* ------------------------------------------------------------- layers */

/*
 * One buffer from a Python object:
 *  - (address, size): the caller's raw memory, which the library
 *    classifies (MMC_MEM_AUTO); (address, size, mem) says where it lives;
 *  - an object exporting __cuda_array_interface__: its device memory
 *    (MMC_MEM_DEVICE), C-contiguous, writable where data is read into it,
 *    once the stream the interface names has finished;
 *  - any other object: a buffer-protocol view held in vs (AUTO, as the
 *    library needs no hint for host memory).
 * 0, or -1 with an exception set.
 */
static int mc_iov(pyh_views_t *vs, PyObject *obj, int writable, mmc_iov_t *iov)
{
    pyh_cuda_array_t arr;
    uint64_t addr;
    long mem;
    int found;

    iov->mem = MMC_MEM_AUTO;
    if (PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 3) {
        if (pyh_addr(PyTuple_GET_ITEM(obj, 0), &addr) != 0 ||
            pyh_size(PyTuple_GET_ITEM(obj, 1), &iov->len) != 0) {
            return -1;
        }
        mem = PyLong_Check(PyTuple_GET_ITEM(obj, 2))
                  ? PyLong_AsLong(PyTuple_GET_ITEM(obj, 2))
                  : -1;
        if (mem < MMC_MEM_AUTO || mem > MMC_MEM_DEVICE) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError,
                            "mem must be MmcMem.AUTO, HOST or DEVICE");
            return -1;
        }
        iov->base = (void *)(uintptr_t)addr;
        iov->mem = (uint32_t)mem;
        return 0;
    }
    if (PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) != 2) {
        PyErr_SetString(PyExc_ValueError, "a buffer tuple is (address, size) "
                                          "or (address, size, mem)");
        return -1;
    }
    if (PyTuple_Check(obj) || PyLong_Check(obj) || PyObject_CheckBuffer(obj)) {
        return pyh_range(vs, obj, writable, &iov->base, &iov->len);
    }
    found = pyh_cuda_array(obj, &arr);
    if (found < 0) {
        return -1;
    }
    if (found == 0) {
        PyErr_Format(PyExc_TypeError,
                     "a buffer is a buffer-protocol object, an object with "
                     "__cuda_array_interface__ or an (address, size[, mem]) "
                     "tuple, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (writable && arr.readonly) {
        PyErr_SetString(PyExc_ValueError,
                        "the device array is read-only: it cannot be read "
                        "into");
        return -1;
    }
    if (pyh_cuda_stream_wait(arr.stream) != 0) {
        return -1;
    }
    iov->base = (void *)(uintptr_t)arr.addr;
    iov->len = arr.len;
    iov->mem = MMC_MEM_DEVICE;
    return 0;
}

/* The iovs of one object from a sequence of ranges; *iov_p is PyMem. */
static int mc_layers(pyh_views_t *vs, PyObject *layers, int writable,
                     mmc_iov_t **iov_p, size_t *niov_p, PyObject **hold_p)
{
    PyObject *t = pyh_tuple(layers, "layers");
    mmc_iov_t *iov;
    Py_ssize_t n;

    if (t == NULL) {
        return -1;
    }
    n = PyTuple_GET_SIZE(t);
    iov = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(*iov));
    if (iov == NULL) {
        Py_DECREF(t);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (mc_iov(vs, PyTuple_GET_ITEM(t, i), writable, &iov[i]) != 0) {
            PyMem_Free(iov);
            Py_DECREF(t);
            return -1;
        }
    }
    *iov_p = iov;
    *niov_p = (size_t)n;
    *hold_p = t;
    return 0;
}

/* Keys of a batch: a tuple holding them and their C strings (PyMem). */
int mc_keys(PyObject *keys, PyObject **tuple_p, const char ***ckeys_p)
{
    PyObject *t = pyh_tuple(keys, "keys");
    const char **ck;
    Py_ssize_t n;

    if (t == NULL) {
        return -1;
    }
    n = PyTuple_GET_SIZE(t);
    ck = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(*ck));
    if (ck == NULL) {
        Py_DECREF(t);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pyh_key(PyTuple_GET_ITEM(t, i), &ck[i]) != 0) {
            PyMem_Free(ck);
            Py_DECREF(t);
            return -1;
        }
    }
    *tuple_p = t;
    *ckeys_p = ck;
    return 0;
}

/* The iovs of a batch: layers_list[i] is a sequence of ranges of key i. */
typedef struct mc_batch_iov {
    mmc_iov_t *all;
    const mmc_iov_t **iovs;
    size_t *niovs;
    PyObject *holds; /* list of the tuples made from the sequences */
} mc_batch_iov_t;

static void mc_batch_iov_free(mc_batch_iov_t *b)
{
    PyMem_Free(b->all);
    PyMem_Free(b->iovs);
    PyMem_Free(b->niovs);
    Py_XDECREF(b->holds);
    memset(b, 0, sizeof(*b));
}

static int mc_batch_iov(pyh_views_t *vs, PyObject *layers_list, size_t count,
                        int writable, mc_batch_iov_t *b)
{
    PyObject *outer = pyh_tuple(layers_list, "layers");
    size_t total = 0, at = 0;

    memset(b, 0, sizeof(*b));
    if (outer == NULL) {
        return -1;
    }
    if ((size_t)PyTuple_GET_SIZE(outer) != count) {
        PyErr_Format(PyExc_ValueError, "%zu keys but %zd buffer lists", count,
                     PyTuple_GET_SIZE(outer));
        goto fail_outer;
    }
    b->holds = PyList_New(0);
    b->iovs = PyMem_Calloc(count > 0 ? count : 1, sizeof(*b->iovs));
    b->niovs = PyMem_Calloc(count > 0 ? count : 1, sizeof(*b->niovs));
    if (b->holds == NULL || b->iovs == NULL || b->niovs == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *t = pyh_tuple(PyTuple_GET_ITEM(outer, (Py_ssize_t)i),
                                "layers of a key");

        if (t == NULL || PyList_Append(b->holds, t) != 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
        b->niovs[i] = (size_t)PyTuple_GET_SIZE(t);
        total += b->niovs[i];
    }
    b->all = PyMem_Calloc(total > 0 ? total : 1, sizeof(*b->all));
    if (b->all == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *t = PyList_GET_ITEM(b->holds, (Py_ssize_t)i);

        b->iovs[i] = &b->all[at];
        for (size_t j = 0; j < b->niovs[i]; j++, at++) {
            if (mc_iov(vs, PyTuple_GET_ITEM(t, (Py_ssize_t)j), writable,
                       &b->all[at]) != 0) {
                goto fail;
            }
        }
    }
    Py_DECREF(outer);
    return 0;
fail:
    mc_batch_iov_free(b);
fail_outer:
    Py_DECREF(outer);
    return -1;
}

/* --------------------------------------------------------- the client */

static int mc_client_init(mc_client_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"settings", "config_file", "load_env", NULL};
    PyObject *settings = NULL, *items = NULL;
    const char *config_file = NULL;
    int load_env = 1;
    mmc_config_t cfg;
    mmc_status_t st;
    mmc_t *mmc = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Ozp", kwlist, &settings,
                                     &config_file, &load_env)) {
        return -1;
    }
    if (self->mmc != NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return -1;
    }
    mmc_config_init(&cfg);
    if (config_file != NULL) {
        st = mmc_config_load(&cfg, config_file);
    } else {
        st = load_env ? mmc_config_load_env(&cfg) : MMC_OK;
    }
    if (st != MMC_OK) {
        pyh_raise(st, NULL);
        return -1;
    }
    if (settings != NULL && settings != Py_None) {
        if (PyDict_Check(settings)) {
            items = PyMapping_Items(settings);
        } else {
            items = pyh_tuple(settings, "settings");
        }
        if (items == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < PySequence_Size(items); i++) {
            PyObject *kv = PySequence_GetItem(items, i);
            PyObject *k = NULL, *v = NULL;
            const char *ks, *vs;

            if (kv == NULL) {
                goto fail;
            }
            if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
                Py_DECREF(kv);
                PyErr_SetString(PyExc_TypeError,
                                "settings are (key, value) pairs");
                goto fail;
            }
            k = PyObject_Str(PyTuple_GET_ITEM(kv, 0));
            v = pyh_setting_str(PyTuple_GET_ITEM(kv, 1));
            Py_DECREF(kv);
            ks = k != NULL ? PyUnicode_AsUTF8(k) : NULL;
            vs = v != NULL ? PyUnicode_AsUTF8(v) : NULL;
            if (ks == NULL || vs == NULL) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                goto fail;
            }
            st = mmc_config_set(&cfg, ks, vs);
            Py_DECREF(k);
            Py_DECREF(v);
            if (st != MMC_OK) {
                pyh_raise(st, NULL);
                goto fail;
            }
        }
        Py_CLEAR(items);
    }
    Py_BEGIN_ALLOW_THREADS
        st = mmc_create(&cfg, &mmc);
    Py_END_ALLOW_THREADS
    if (st != MMC_OK) {
        pyh_raise(st, NULL);
        return -1;
    }
    self->mmc = mmc;
    return 0;
fail:
    Py_XDECREF(items);
    return -1;
}

static void mc_client_close_now(mc_client_t *self)
{
    mmc_t *mmc = self->mmc;

    self->mmc = NULL;
    if (mmc != NULL) {
        Py_BEGIN_ALLOW_THREADS
            mmc_destroy(mmc);
        Py_END_ALLOW_THREADS
    }
}

static void mc_client_dealloc(mc_client_t *self)
{
    /* no call can be in flight: it would hold a reference */
    mc_client_close_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *mc_client_close(mc_client_t *self, PyObject *unused)
{
    if (self->busy > 0) {
        return pyh_raise(MF_ERR_BUSY, NULL);
    }
    mc_client_close_now(self);
    Py_RETURN_NONE;
}

static PyObject *mc_client_closed(mc_client_t *self, void *unused)
{
    return PyBool_FromLong(self->mmc == NULL);
}

static PyObject *mc_client_rank(mc_client_t *self, PyObject *unused)
{
    if (self->mmc == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    return PyLong_FromUnsignedLong(mmc_rank(self->mmc));
}

static PyObject *mc_client_put(mc_client_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key",       "layers", "replicas", "flags",
                             "preferred", "media",  NULL};
    PyObject *key_obj, *layers, *replicas = NULL, *preferred = NULL;
    PyObject *media = NULL;
    PyObject *hold = NULL;
    unsigned flags = 0;
    pyh_views_t vs = {0};
    mmc_put_opts_t opts;
    mmc_iov_t *iov = NULL;
    size_t niov = 0;
    const char *key;
    mmc_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OIOO", kwlist, &key_obj,
                                     &layers, &replicas, &flags, &preferred,
                                     &media) ||
        pyh_key(key_obj, &key) != 0 ||
        mc_opts(replicas, flags, preferred, media, &opts) != 0 ||
        mc_layers(&vs, layers, 0, &iov, &niov, &hold) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    if (mc_enter(self) != 0) {
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
        /* the plain form carries no mem per buffer */
        if (niov == 1 && iov[0].mem == MMC_MEM_AUTO) {
            st = mmc_put(self->mmc, key, iov[0].base, iov[0].len, &opts);
        } else {
            st = mmc_put_layers(self->mmc, key, iov, niov, &opts);
        }
    Py_END_ALLOW_THREADS
    mc_leave(self);
    PyMem_Free(iov);
    Py_DECREF(hold);
    pyh_views_release(&vs);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
fail:
    PyMem_Free(iov);
    Py_DECREF(hold);
    pyh_views_release(&vs);
    return NULL;
}

static PyObject *mc_client_get(mc_client_t *self, PyObject *args)
{
    PyObject *key_obj, *layers, *hold = NULL;
    pyh_views_t vs = {0};
    mmc_iov_t *iov = NULL;
    size_t niov = 0;
    const char *key;
    mmc_status_t st;

    if (!PyArg_ParseTuple(args, "OO", &key_obj, &layers) ||
        pyh_key(key_obj, &key) != 0 ||
        mc_layers(&vs, layers, 1, &iov, &niov, &hold) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    if (mc_enter(self) != 0) {
        PyMem_Free(iov);
        Py_DECREF(hold);
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        if (niov == 1 && iov[0].mem == MMC_MEM_AUTO) {
            st = mmc_get(self->mmc, key, iov[0].base, iov[0].len);
        } else {
            st = mmc_get_layers(self->mmc, key, iov, niov);
        }
    Py_END_ALLOW_THREADS
    mc_leave(self);
    PyMem_Free(iov);
    Py_DECREF(hold);
    pyh_views_release(&vs);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

/* Reads a whole object into a new bytes.  The object may be replaced
 * between the size query and the read: a size mismatch tries again. */
static PyObject *mc_get_bytes_key(mc_client_t *self, const char *key,
                                  mmc_status_t *st_p)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        mmc_obj_info_t info = {.info_size = sizeof(info)};
        PyObject *bytes;
        mmc_status_t st;

        Py_BEGIN_ALLOW_THREADS
            st = mmc_query(self->mmc, key, &info);
        Py_END_ALLOW_THREADS
        if (st != MMC_OK) {
            *st_p = st;
            return NULL;
        }
        if (info.size > (uint64_t)PY_SSIZE_T_MAX) {
            *st_p = MF_ERR_TOO_LARGE;
            return NULL;
        }
        bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)info.size);
        if (bytes == NULL) {
            *st_p = MF_ERR_NOMEM;
            return NULL;
        }
        /* the new bytes is not shared yet: writing it unlocked is safe */
        Py_BEGIN_ALLOW_THREADS
            st = mmc_get(self->mmc, key, PyBytes_AS_STRING(bytes),
                         (size_t)info.size);
        Py_END_ALLOW_THREADS
        if (st == MMC_OK) {
            *st_p = MMC_OK;
            return bytes;
        }
        Py_DECREF(bytes);
        if (st != MMC_ERR_SIZE_MISMATCH) {
            *st_p = st;
            return NULL;
        }
    }
    *st_p = MMC_ERR_SIZE_MISMATCH;
    return NULL;
}

static PyObject *mc_client_get_bytes(mc_client_t *self, PyObject *key_obj)
{
    const char *key;
    mmc_status_t st;
    PyObject *res;

    if (pyh_key(key_obj, &key) != 0 || mc_enter(self) != 0) {
        return NULL;
    }
    Py_INCREF(key_obj);
    res = mc_get_bytes_key(self, key, &st);
    Py_DECREF(key_obj);
    mc_leave(self);
    if (res == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return pyh_raise(st, NULL);
    }
    return res;
}

/* Runs a batch call of kind put (writable 0) or get (1). */
static PyObject *mc_batch_xfer(mc_client_t *self, PyObject *keys,
                               PyObject *layers_list, int is_get,
                               const mmc_put_opts_t *opts)
{
    PyObject *kt = NULL, *res = NULL;
    const char **ck = NULL;
    pyh_views_t vs = {0};
    mc_batch_iov_t b = {0};
    int *results = NULL;
    size_t count;
    bool single = true;

    if (mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    if (mc_batch_iov(&vs, layers_list, count, is_get, &b) != 0) {
        goto out;
    }
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        /* the plain forms carry no mem per buffer */
        single = single && b.niovs[i] == 1 && b.iovs[i][0].mem == MMC_MEM_AUTO;
    }
    if (mc_enter(self) != 0) {
        goto out;
    }
    if (single) {
        void **bufs = PyMem_Calloc(count > 0 ? count : 1, sizeof(*bufs));
        size_t *sizes = PyMem_Calloc(count > 0 ? count : 1, sizeof(*sizes));

        if (bufs == NULL || sizes == NULL) {
            PyMem_Free(bufs);
            PyMem_Free(sizes);
            mc_leave(self);
            PyErr_NoMemory();
            goto out;
        }
        for (size_t i = 0; i < count; i++) {
            bufs[i] = b.iovs[i][0].base;
            sizes[i] = b.iovs[i][0].len;
        }
        Py_BEGIN_ALLOW_THREADS
            if (is_get) {
                mmc_get_batch(self->mmc, ck, bufs, sizes, count, results);
            } else {
                mmc_put_batch(self->mmc, ck, (const void *const *)bufs, sizes,
                              count, opts, results);
            }
        Py_END_ALLOW_THREADS
        PyMem_Free(bufs);
        PyMem_Free(sizes);
    } else {
        Py_BEGIN_ALLOW_THREADS
            if (is_get) {
                mmc_get_layers_batch(self->mmc, ck, b.iovs, b.niovs, count,
                                     results);
            } else {
                mmc_put_layers_batch(self->mmc, ck, b.iovs, b.niovs, count,
                                     opts, results);
            }
        Py_END_ALLOW_THREADS
    }
    mc_leave(self);
    res = pyh_int_list(results, count);
out:
    PyMem_Free(results);
    mc_batch_iov_free(&b);
    pyh_views_release(&vs);
    PyMem_Free(ck);
    Py_DECREF(kt);
    return res;
}

static PyObject *mc_client_put_batch(mc_client_t *self, PyObject *args,
                                     PyObject *kw)
{
    static char *kwlist[] = {"keys",      "layers", "replicas", "flags",
                             "preferred", "media",  NULL};
    PyObject *keys, *layers, *replicas = NULL, *preferred = NULL;
    PyObject *media = NULL;
    unsigned flags = 0;
    mmc_put_opts_t opts;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OIOO", kwlist, &keys,
                                     &layers, &replicas, &flags, &preferred,
                                     &media) ||
        mc_opts(replicas, flags, preferred, media, &opts) != 0) {
        return NULL;
    }
    return mc_batch_xfer(self, keys, layers, 0, &opts);
}

static PyObject *mc_client_get_batch(mc_client_t *self, PyObject *args)
{
    PyObject *keys, *layers;

    if (!PyArg_ParseTuple(args, "OO", &keys, &layers)) {
        return NULL;
    }
    return mc_batch_xfer(self, keys, layers, 1, NULL);
}

/* Whole objects of many keys: a list of bytes (found) or int (status).
 * Sizes come from one query batch; the found keys are then read with one
 * get batch straight into new bytes objects. */
static PyObject *mc_client_get_batch_bytes(mc_client_t *self, PyObject *keys)
{
    PyObject *kt = NULL, *res = NULL;
    const char **ck = NULL, **fk = NULL;
    mmc_obj_info_t *infos = NULL;
    int *results = NULL, *fres = NULL;
    void **bufs = NULL;
    size_t *sizes = NULL, *idx = NULL, count, nf = 0, n1;

    if (mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    n1 = count > 0 ? count : 1;
    infos = PyMem_Calloc(n1, sizeof(*infos));
    mmc_obj_info_init(infos, infos != NULL ? n1 : 0);
    results = PyMem_Calloc(n1, sizeof(*results));
    fres = PyMem_Calloc(n1, sizeof(*fres));
    fk = PyMem_Calloc(n1, sizeof(*fk));
    bufs = PyMem_Calloc(n1, sizeof(*bufs));
    sizes = PyMem_Calloc(n1, sizeof(*sizes));
    idx = PyMem_Calloc(n1, sizeof(*idx));
    res = PyList_New((Py_ssize_t)count);
    if (res == NULL || infos == NULL || results == NULL || fres == NULL ||
        fk == NULL || bufs == NULL || sizes == NULL || idx == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    if (mc_enter(self) != 0) {
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_query_batch(self->mmc, ck, count, infos, results);
    Py_END_ALLOW_THREADS
    for (size_t i = 0; i < count; i++) {
        PyObject *item;

        if (results[i] == MMC_OK && infos[i].size <= PY_SSIZE_T_MAX) {
            item = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)infos[i].size);
            if (item != NULL) {
                fk[nf] = ck[i];
                bufs[nf] = PyBytes_AS_STRING(item);
                sizes[nf] = (size_t)infos[i].size;
                idx[nf++] = i;
            }
        } else {
            item = PyLong_FromLong(results[i] == MMC_OK ? MF_ERR_TOO_LARGE
                                                        : results[i]);
        }
        if (item == NULL) {
            mc_leave(self);
            goto fail;
        }
        PyList_SET_ITEM(res, (Py_ssize_t)i, item);
    }
    if (nf > 0) {
        /* the new bytes objects are not shared yet: written unlocked */
        Py_BEGIN_ALLOW_THREADS
            mmc_get_batch(self->mmc, fk, bufs, sizes, nf, fres);
        Py_END_ALLOW_THREADS
    }
    for (size_t j = 0; j < nf; j++) {
        PyObject *item = NULL;
        mmc_status_t st = fres[j];

        if (st == MMC_OK) {
            continue;
        }
        if (st == MMC_ERR_SIZE_MISMATCH) {
            /* replaced meanwhile: read it alone */
            item = mc_get_bytes_key(self, fk[j], &st);
            if (item == NULL && PyErr_Occurred()) {
                mc_leave(self);
                goto fail;
            }
        }
        if (item == NULL) {
            item = PyLong_FromLong(st);
            if (item == NULL) {
                mc_leave(self);
                goto fail;
            }
        }
        PyList_SetItem(res, (Py_ssize_t)idx[j], item);
    }
    mc_leave(self);
    goto out;
fail:
    Py_CLEAR(res);
out:
    PyMem_Free(infos);
    PyMem_Free(results);
    PyMem_Free(fres);
    PyMem_Free(fk);
    PyMem_Free(bufs);
    PyMem_Free(sizes);
    PyMem_Free(idx);
    PyMem_Free(ck);
    Py_DECREF(kt);
    return res;
}

/* Single-key call returning a status, GIL released. */
typedef mmc_status_t (*mc_key_fn)(mmc_t *mmc, const char *key);

static int mc_key_call(mc_client_t *self, PyObject *key_obj, mc_key_fn fn,
                       mmc_status_t *st_p)
{
    const char *key;
    mmc_status_t st;

    if (pyh_key(key_obj, &key) != 0 || mc_enter(self) != 0) {
        return -1;
    }
    Py_INCREF(key_obj);
    Py_BEGIN_ALLOW_THREADS
        st = fn(self->mmc, key);
    Py_END_ALLOW_THREADS
    Py_DECREF(key_obj);
    mc_leave(self);
    *st_p = st;
    return 0;
}

static PyObject *mc_client_exist(mc_client_t *self, PyObject *key_obj)
{
    mmc_status_t st;

    if (mc_key_call(self, key_obj, mmc_exist, &st) != 0) {
        return NULL;
    }
    if (st == MMC_OK || st == MMC_ERR_NOT_FOUND) {
        return PyBool_FromLong(st == MMC_OK);
    }
    return pyh_raise(st, NULL);
}

static PyObject *mc_client_remove(mc_client_t *self, PyObject *key_obj)
{
    mmc_status_t st;

    if (mc_key_call(self, key_obj, mmc_remove, &st) != 0) {
        return NULL;
    }
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

PyObject *mc_keys_call(mc_client_t *self, PyObject *keys, mc_keys_fn fn)
{
    PyObject *kt, *res = NULL;
    const char **ck;
    int *results;
    size_t count;

    if (mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (results == NULL) {
        PyErr_NoMemory();
    } else if (mc_enter(self) == 0) {
        Py_BEGIN_ALLOW_THREADS
            fn(self->mmc, ck, count, results);
        Py_END_ALLOW_THREADS
        mc_leave(self);
        res = pyh_int_list(results, count);
    }
    PyMem_Free(results);
    PyMem_Free(ck);
    Py_DECREF(kt);
    return res;
}

static PyObject *mc_client_exist_batch(mc_client_t *self, PyObject *keys)
{
    return mc_keys_call(self, keys, mmc_exist_batch);
}

static PyObject *mc_client_remove_batch(mc_client_t *self, PyObject *keys)
{
    return mc_keys_call(self, keys, mmc_remove_batch);
}

/* (size, [(rank, media, gva), ...]) */
PyObject *mc_info_tuple(const mmc_obj_info_t *info)
{
    uint32_t n =
        info->nreplicas > MMC_MAX_REPLICAS ? MMC_MAX_REPLICAS : info->nreplicas;
    PyObject *reps = PyList_New(n), *res;

    if (reps == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        PyObject *r = Py_BuildValue("(kiK)", (unsigned long)info->ranks[i],
                                    (int)info->media[i],
                                    (unsigned long long)info->gvas[i]);

        if (r == NULL) {
            Py_DECREF(reps);
            return NULL;
        }
        PyList_SET_ITEM(reps, i, r);
    }
    res = Py_BuildValue("(KN)", (unsigned long long)info->size, reps);
    return res;
}

PyObject *mc_infos_list(const int *results, const mmc_obj_info_t *infos,
                        size_t count)
{
    PyObject *res = PyList_New((Py_ssize_t)count);

    for (size_t i = 0; res != NULL && i < count; i++) {
        PyObject *info, *item;

        if (results[i] == MMC_OK) {
            info = mc_info_tuple(&infos[i]);
        } else {
            info = Py_None;
            Py_INCREF(info);
        }
        item = info != NULL ? Py_BuildValue("(iN)", results[i], info) : NULL;
        if (item == NULL) {
            Py_CLEAR(res);
            break;
        }
        PyList_SET_ITEM(res, (Py_ssize_t)i, item);
    }
    return res;
}

static PyObject *mc_client_query(mc_client_t *self, PyObject *key_obj)
{
    mmc_obj_info_t info = {.info_size = sizeof(info)};
    const char *key;
    mmc_status_t st;

    if (pyh_key(key_obj, &key) != 0 || mc_enter(self) != 0) {
        return NULL;
    }
    Py_INCREF(key_obj);
    Py_BEGIN_ALLOW_THREADS
        st = mmc_query(self->mmc, key, &info);
    Py_END_ALLOW_THREADS
    Py_DECREF(key_obj);
    mc_leave(self);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    return mc_info_tuple(&info);
}

/* A list of (status, info or None). */
static PyObject *mc_client_query_batch(mc_client_t *self, PyObject *keys)
{
    PyObject *kt, *res = NULL;
    const char **ck;
    mmc_obj_info_t *infos;
    int *results;
    size_t count;

    if (mc_keys(keys, &kt, &ck) != 0) {
        return NULL;
    }
    count = (size_t)PyTuple_GET_SIZE(kt);
    infos = PyMem_Calloc(count > 0 ? count : 1, sizeof(*infos));
    mmc_obj_info_init(infos, infos != NULL ? count : 0);
    results = PyMem_Calloc(count > 0 ? count : 1, sizeof(*results));
    if (infos == NULL || results == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    if (mc_enter(self) != 0) {
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
        mmc_query_batch(self->mmc, ck, count, infos, results);
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

static PyObject *mc_client_register_buffer(mc_client_t *self, PyObject *args)
{
    unsigned long long addr;
    Py_ssize_t size;
    mmc_status_t st;

    if (!PyArg_ParseTuple(args, "Kn", &addr, &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    if (mc_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mmc_register_buffer(self->mmc, (void *)(uintptr_t)addr,
                                 (size_t)size);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *mc_client_unregister_buffer(mc_client_t *self,
                                             PyObject *addr_obj)
{
    uint64_t addr;
    mmc_status_t st;

    if (pyh_addr(addr_obj, &addr) != 0 || mc_enter(self) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mmc_unregister_buffer(self->mmc, (void *)(uintptr_t)addr);
    Py_END_ALLOW_THREADS
    mc_leave(self);
    if (st != MMC_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

static PyMethodDef mc_client_methods[] = {
    {"close", (PyCFunction)mc_client_close, METH_NOARGS,
     "close()\n--\n\nLeaves the pool gracefully and disconnects (objects "
     "whose only replicas were in this process's segment are gone). "
     "Idempotent; raises MF_ERR_BUSY while another thread is in a call."},
    {"rank", (PyCFunction)mc_client_rank, METH_NOARGS,
     "rank()\n--\n\nThis process's rank in the pool."},
    {"put", PYH_KW(mc_client_put), METH_VARARGS | METH_KEYWORDS,
     "put(key, layers, replicas=None, flags=0, preferred=None)\n--\n\n"
     "Stores the concatenation of `layers` under key.  A layer is a "
     "buffer-protocol object, a device array exporting "
     "__cuda_array_interface__ (C-contiguous; its stream is waited for), "
     "or an (address, size) or (address, size, mem) tuple of raw memory "
     "(mem: MEM_AUTO, MEM_HOST or MEM_DEVICE).  Raises MmcError (e.g. "
     "MMC_ERR_EXISTS without flags=PUT_REPLACE)."},
    {"get", (PyCFunction)mc_client_get, METH_VARARGS,
     "get(key, layers)\n--\n\nReads the object into `layers` (as put() "
     "takes them, writable) whose sizes must add up to the object's size "
     "(else MMC_ERR_SIZE_MISMATCH).  A read-only device array raises "
     "ValueError."},
    {"get_bytes", (PyCFunction)mc_client_get_bytes, METH_O,
     "get_bytes(key)\n--\n\nThe whole object as a new bytes; raises "
     "MmcError (MMC_ERR_NOT_FOUND, ...)."},
    {"put_batch", PYH_KW(mc_client_put_batch), METH_VARARGS | METH_KEYWORDS,
     "put_batch(keys, layers, replicas=None, flags=0, preferred=None)\n--\n\n"
     "Puts many objects; layers[i] is the sequence of ranges of keys[i]. "
     "Returns the status of every item (0 = stored)."},
    {"get_batch", (PyCFunction)mc_client_get_batch, METH_VARARGS,
     "get_batch(keys, layers)\n--\n\nReads many objects into their ranges; "
     "returns the status of every item."},
    {"get_batch_bytes", (PyCFunction)mc_client_get_batch_bytes, METH_O,
     "get_batch_bytes(keys)\n--\n\nWhole objects: a list whose items are "
     "bytes (found) or the int status of the item."},
    {"exist", (PyCFunction)mc_client_exist, METH_O,
     "exist(key)\n--\n\nWhether a committed object exists under key."},
    {"exist_batch", (PyCFunction)mc_client_exist_batch, METH_O,
     "exist_batch(keys)\n--\n\nStatus of every key: 0 exists, "
     "MMC_ERR_NOT_FOUND (-200) absent, or an error."},
    {"query", (PyCFunction)mc_client_query, METH_O,
     "query(key)\n--\n\n(size, [(rank, media, gva), ...]) of the object."},
    {"query_batch", (PyCFunction)mc_client_query_batch, METH_O,
     "query_batch(keys)\n--\n\nA list of (status, info or None), info as "
     "query() gives it; (MMC_ERR_NOT_FOUND, None) where absent."},
    {"remove", (PyCFunction)mc_client_remove, METH_O,
     "remove(key)\n--\n\nRemoves the object; raises MMC_ERR_NOT_FOUND if "
     "absent."},
    {"remove_batch", (PyCFunction)mc_client_remove_batch, METH_O,
     "remove_batch(keys)\n--\n\nRemoves many objects; the status of each."},
    {"register_buffer", (PyCFunction)mc_client_register_buffer, METH_VARARGS,
     "register_buffer(address, size)\n--\n\nMarks raw memory as reused for "
     "puts and gets (optional; unregistered memory works too)."},
    {"unregister_buffer", (PyCFunction)mc_client_unregister_buffer, METH_O,
     "unregister_buffer(address)\n--\n\nUndoes register_buffer."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mc_client_getset[] = {
    {"closed", (getter)mc_client_closed, NULL,
     "True once close() ran (or the client never connected).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject mc_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._memcache.Client",
    .tp_basicsize = sizeof(mc_client_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Client(settings=None, config_file=None, load_env=True)\n--\n\n"
              "A MemCache local service (one mmc_t): connects to mmc-meta, "
              "joins the pool and contributes dram_size bytes.  settings are "
              "mmc-local.conf keys (dict or (key, value) pairs) applied "
              "after the file and the MMC_* environment.  One per process.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)mc_client_init,
    .tp_dealloc = (destructor)mc_client_dealloc,
    .tp_methods = mc_client_methods,
    .tp_getset = mc_client_getset,
};

/* ------------------------------------------------------------ module */

static PyObject *mc_status_name(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyUnicode_FromString(mmc_status_name((int)st));
}

static PyObject *mc_status_str(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyUnicode_FromString(mmc_status_str((int)st));
}

static PyObject *mc_config_help(PyObject *mod, PyObject *unused)
{
    return pyh_capture(mmc_config_help);
}

static PyObject *mc_buffer_address(PyObject *mod, PyObject *args)
{
    PyObject *obj;
    int writable = 0;
    Py_buffer view;
    PyObject *res;

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

static PyObject *mc_upstream_status(PyObject *mod, PyObject *arg)
{
    long st = PyLong_AsLong(arg);

    (void)mod;
    if (st == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (st < INT32_MIN || st > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a status is an int32");
        return NULL;
    }
    return PyLong_FromLong(mmcc_status((int32_t)st));
}

static PyMethodDef mc_module_methods[] = {
    {"upstream_status", mc_upstream_status, METH_O,
     "upstream_status(status)\n--\n\nUpstream MemCache's code of a status "
     "(mmcc_status): 0 and positive values as they are."},
    {"status_name", mc_status_name, METH_O,
     "status_name(status)\n--\n\nName of a status of any range."},
    {"status_str", mc_status_str, METH_O,
     "status_str(status)\n--\n\nDescription of a status of any range."},
    {"config_help", mc_config_help, METH_NOARGS,
     "config_help()\n--\n\nEvery mmc-local.conf key with its default."},
    {"buffer_address", mc_buffer_address, METH_VARARGS,
     "buffer_address(obj, writable=False)\n--\n\n(address, nbytes) of a "
     "C-contiguous buffer-protocol object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memfabric._memcache",
    .m_doc = "MemCache client (libmemcache) for the memfabric package.",
    .m_size = -1,
    .m_methods = mc_module_methods,
};

/* The Client methods of both files, in the one table tp_methods takes. */
static PyMethodDef mc_all_methods[64];

static int mc_methods_merge(void)
{
    const PyMethodDef *tables[] = {mc_client_methods, mc_stream_methods};
    size_t n = 0;

    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (const PyMethodDef *m = tables[t]; m->ml_name != NULL; m++) {
            if (n + 1 >= sizeof(mc_all_methods) / sizeof(mc_all_methods[0])) {
                PyErr_SetString(PyExc_SystemError, "too many Client methods");
                return -1;
            }
            mc_all_methods[n++] = *m;
        }
    }
    mc_client_type.tp_methods = mc_all_methods;
    return 0;
}

PyMODINIT_FUNC PyInit__memcache(void)
{
    PyObject *m;

    if (pyh_errors_init("MmcError", mc_name, mc_str) != 0 ||
        mc_methods_merge() != 0 || PyType_Ready(&mc_client_type) != 0) {
        return NULL;
    }
    m = PyModule_Create(&mc_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&mc_client_type);
    if (PyModule_AddObject(m, "Client", (PyObject *)&mc_client_type) != 0 ||
        PyModule_AddIntConstant(m, "KEY_MAX", MMC_KEY_MAX) != 0 ||
        PyModule_AddIntConstant(m, "BATCH_MAX", MMC_BATCH_MAX) != 0 ||
        PyModule_AddIntConstant(m, "MAX_REPLICAS", MMC_MAX_REPLICAS) != 0 ||
        PyModule_AddIntConstant(m, "PUT_REPLACE", MMC_PUT_REPLACE) != 0 ||
        PyModule_AddIntConstant(m, "MEM_AUTO", MMC_MEM_AUTO) != 0 ||
        PyModule_AddIntConstant(m, "MEM_HOST", MMC_MEM_HOST) != 0 ||
        PyModule_AddIntConstant(m, "MEM_DEVICE", MMC_MEM_DEVICE) != 0 ||
        PyModule_AddIntConstant(m, "COPY_AUTO", MF_COPY_AUTO) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
