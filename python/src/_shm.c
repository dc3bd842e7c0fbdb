/*
 * memfabric._shm: SHM (mf_shm.h, libmemfabric's public API) as a CPython
 * extension: one type, Region, a symmetric region of the process's
 * bootstrap (memfabric.bm_init, which mf_shm_init is), with its parts'
 * addresses, put/get, the control collectives, topology, counters, the
 * context block and the global exit.  Memory is a buffer-protocol object
 * or an (address, size) tuple; failures raise memfabric.MfError.
 *
 * Invariants: the GIL is released around every call that may block; a
 * Region with a call in flight in another thread cannot be destroyed
 * (MF_ERR_BUSY); a destroyed one raises MF_ERR_STATE.  The exit callback
 * runs on the library's thread with the GIL taken; the Region keeps it
 * alive until destroyed.
 */
#include "pyhelp.h"

#include <memfabric/memfabric.h>

static const char *shp_name(int st)
{
    return mf_status_name((mf_status_t)st);
}

static const char *shp_str(int st)
{
    return mf_status_str((mf_status_t)st);
}

typedef struct shp_region {
    PyObject_HEAD mf_shm_t *shm;
    Py_ssize_t busy;   /* calls in flight without the GIL */
    PyObject *exit_cb; /* a callable(status, from_rank), or NULL */
} shp_region_t;

static mf_shm_t *shp_enter(shp_region_t *self)
{
    if (self->shm == NULL) {
        pyh_raise(MF_ERR_STATE, NULL);
        return NULL;
    }
    self->busy++;
    return self->shm;
}

static void shp_leave(shp_region_t *self)
{
    self->busy--;
}

static PyObject *shp_done(mf_status_t st)
{
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    Py_RETURN_NONE;
}

static int shp_region_init(shp_region_t *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"id", "size", "device", "gva_base", NULL};
    unsigned long long size, base = 0;
    mf_shm_create_params_t params;
    unsigned int id;
    int device = 0;
    mf_status_t st;
    mf_shm_t *shm;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "IK|pK", kwlist, &id, &size,
                                     &device, &base)) {
        return -1;
    }
    if (self->shm != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Region is created already");
        return -1;
    }
    mf_shm_create_params_init(&params);
    params.symmetric_size = size;
    params.type = device ? MF_MEM_DEVICE : MF_MEM_HOST;
    params.gva_base = base;
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_create(id, &params, &shm);
    Py_END_ALLOW_THREADS
    if (st != MF_OK) {
        pyh_raise(st, NULL);
        return -1;
    }
    self->shm = shm;
    return 0;
}

static void shp_region_close_now(shp_region_t *self)
{
    mf_shm_t *shm = self->shm;

    self->shm = NULL;
    if (shm != NULL) {
        Py_BEGIN_ALLOW_THREADS
            mf_shm_destroy(shm); /* joins the exit thread: no GIL held */
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->exit_cb);
}

static void shp_region_dealloc(shp_region_t *self)
{
    shp_region_close_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *shp_region_destroy(shp_region_t *self, PyObject *unused)
{
    (void)unused;
    if (self->busy > 0) {
        return pyh_raise(MF_ERR_BUSY, NULL);
    }
    shp_region_close_now(self);
    Py_RETURN_NONE;
}

static PyObject *shp_region_ptr(shp_region_t *self, PyObject *arg)
{
    unsigned long rank = PyLong_AsUnsignedLong(arg);
    void *p;

    if (rank == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->shm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    p = rank <= UINT32_MAX ? mf_shm_ptr(self->shm, (uint32_t)rank) : NULL;
    if (p == NULL) {
        PyErr_Format(PyExc_ValueError, "rank %lu is not in the world", rank);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)p);
}

/* put(gva, data) and get_into(gva, dest): data a buffer object or
 * (address, size), dest a writable one. */
static PyObject *shp_region_xfer(shp_region_t *self, PyObject *args, int put)
{
    unsigned long long gva;
    pyh_views_t vs = {0};
    PyObject *mem;
    mf_shm_t *shm;
    mf_status_t st;
    void *addr;
    size_t len;

    if (!PyArg_ParseTuple(args, "KO", &gva, &mem) ||
        pyh_range(&vs, mem, !put, &addr, &len) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    shm = shp_enter(self);
    if (shm == NULL) {
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = put ? mf_shm_put(shm, gva, addr, len)
                 : mf_shm_get(shm, addr, gva, len);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    pyh_views_release(&vs);
    return shp_done(st);
}

static PyObject *shp_region_put(shp_region_t *self, PyObject *args)
{
    return shp_region_xfer(self, args, 1);
}

static PyObject *shp_region_get_into(shp_region_t *self, PyObject *args)
{
    return shp_region_xfer(self, args, 0);
}

static PyObject *shp_region_barrier(shp_region_t *self, PyObject *unused)
{
    mf_shm_t *shm = shp_enter(self);
    mf_status_t st;

    (void)unused;
    if (shm == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_barrier(shm);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    return shp_done(st);
}

static PyObject *shp_region_group_barrier(shp_region_t *self, PyObject *args)
{
    unsigned int count;
    const char *key;
    mf_shm_t *shm;
    mf_status_t st;

    if (!PyArg_ParseTuple(args, "sI", &key, &count) ||
        (shm = shp_enter(self)) == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_group_barrier(shm, key, count);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    return shp_done(st);
}

/* The count pieces of len bytes of out as a list of bytes. */
static PyObject *shp_pieces(const char *out, uint32_t count, size_t len)
{
    PyObject *list = PyList_New(count);

    for (uint32_t i = 0; list != NULL && i < count; i++) {
        PyObject *b = PyBytes_FromStringAndSize(out + i * len, (Py_ssize_t)len);

        if (b == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, b);
    }
    return list;
}

/* allgather(data) / group_allgather(key, index, count, data): a list with
 * every rank's bytes, by rank (index). */
static PyObject *shp_gather(shp_region_t *self, const char *key, uint32_t index,
                            uint32_t count, PyObject *data)
{
    pyh_views_t vs = {0};
    PyObject *res = NULL;
    mf_shm_t *shm;
    mf_status_t st;
    char *out;
    void *in;
    size_t len;

    if (pyh_range(&vs, data, 0, &in, &len) != 0) {
        pyh_views_release(&vs);
        return NULL;
    }
    if (len == 0) {
        pyh_views_release(&vs);
        PyErr_SetString(PyExc_ValueError, "allgather of 0 bytes");
        return NULL;
    }
    if (len > PY_SSIZE_T_MAX / count) {
        pyh_views_release(&vs);
        PyErr_SetString(PyExc_OverflowError, "count x len is too large");
        return NULL;
    }
    out = PyMem_Malloc(len * count);
    shm = out != NULL ? shp_enter(self) : NULL;
    if (shm == NULL) {
        if (out == NULL) {
            PyErr_NoMemory();
        }
        PyMem_Free(out);
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = key == NULL
                 ? mf_shm_allgather(shm, in, len, out)
                 : mf_shm_group_allgather(shm, key, index, count, in, len, out);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    if (st == MF_OK) {
        res = shp_pieces(out, count, len);
    } else {
        pyh_raise(st, NULL);
    }
    PyMem_Free(out);
    pyh_views_release(&vs);
    return res;
}

static PyObject *shp_region_allgather(shp_region_t *self, PyObject *data)
{
    if (self->shm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    return shp_gather(self, NULL, mf_shm_rank(self->shm),
                      mf_shm_world(self->shm), data);
}

static PyObject *shp_region_group_allgather(shp_region_t *self, PyObject *args)
{
    unsigned int index, count;
    const char *key;
    PyObject *data;

    if (!PyArg_ParseTuple(args, "sIIO", &key, &index, &count, &data)) {
        return NULL;
    }
    if (count == 0 || index >= count) {
        PyErr_SetString(PyExc_ValueError, "index must be below count");
        return NULL;
    }
    return shp_gather(self, key, index, count, data);
}

/* (flags, transport) */
static PyObject *shp_region_can_reach(shp_region_t *self, PyObject *arg)
{
    unsigned long rank = PyLong_AsUnsignedLong(arg);
    mf_shm_reach_t reach;
    mf_status_t st;

    if (rank == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->shm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    st =
        mf_shm_can_reach(self->shm, (uint32_t)Py_MIN(rank, UINT32_MAX), &reach);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return Py_BuildValue("(Is)", reach.flags, reach.transport);
}

static PyObject *shp_region_atomic_add(shp_region_t *self, PyObject *args)
{
    long long delta;
    int64_t v = 0;
    const char *name;
    mf_shm_t *shm;
    mf_status_t st;

    if (!PyArg_ParseTuple(args, "sL", &name, &delta) ||
        (shm = shp_enter(self)) == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_atomic_add(shm, name, delta, &v);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    if (st != MF_OK) {
        return pyh_raise(st, NULL);
    }
    return PyLong_FromLongLong(v);
}

/* (swapped, current) */
static PyObject *shp_region_atomic_cas(shp_region_t *self, PyObject *args)
{
    long long expected, desired;
    int64_t cur = 0;
    const char *name;
    mf_shm_t *shm;
    mf_status_t st;

    if (!PyArg_ParseTuple(args, "sLL", &name, &expected, &desired) ||
        (shm = shp_enter(self)) == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_atomic_cas(shm, name, expected, desired, &cur);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    if (st == MF_OK) {
        return Py_BuildValue("(OL)", Py_True, (long long)desired);
    }
    if (st == MF_ERR_MISMATCH) {
        return Py_BuildValue("(OL)", Py_False, (long long)cur);
    }
    return pyh_raise(st, NULL);
}

static PyObject *shp_region_atomic_reset(shp_region_t *self, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    mf_shm_t *shm;
    mf_status_t st;

    if (name == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "a counter name is a str");
        }
        return NULL;
    }
    if ((shm = shp_enter(self)) == NULL) {
        return NULL;
    }
    Py_INCREF(arg);
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_atomic_reset(shm, name);
    Py_END_ALLOW_THREADS
    Py_DECREF(arg);
    shp_leave(self);
    return shp_done(st);
}

static PyObject *shp_region_set_context(shp_region_t *self, PyObject *data)
{
    pyh_views_t vs = {0};
    mf_shm_t *shm;
    mf_status_t st;
    void *addr;
    size_t len;

    if (pyh_range(&vs, data, 0, &addr, &len) != 0 ||
        (shm = shp_enter(self)) == NULL) {
        pyh_views_release(&vs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_set_context(shm, addr, len);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    pyh_views_release(&vs);
    return shp_done(st);
}

static PyObject *shp_region_get_context(shp_region_t *self, PyObject *args,
                                        PyObject *kw)
{
    static char *kwlist[] = {"timeout_ms", NULL};
    unsigned int timeout_ms = 0;
    PyObject *res = NULL;
    mf_shm_t *shm;
    mf_status_t st;
    size_t len = 0;
    char *buf;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|I", kwlist, &timeout_ms)) {
        return NULL;
    }
    buf = PyMem_Malloc(MF_SHM_CONTEXT_MAX);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    if ((shm = shp_enter(self)) == NULL) {
        PyMem_Free(buf);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_get_context(shm, buf, MF_SHM_CONTEXT_MAX, &len, timeout_ms);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    if (st == MF_OK) {
        res = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    } else {
        pyh_raise(st, NULL);
    }
    PyMem_Free(buf);
    return res;
}

static void shp_exit_cb(mf_shm_t *shm, int status, uint32_t from, void *arg)
{
    shp_region_t *self = arg;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *cb = self->exit_cb, *r;

    (void)shm;
    if (cb != NULL) {
        Py_INCREF(cb);
        r = PyObject_CallFunction(cb, "iI", status, from);
        if (r == NULL) {
            PyErr_WriteUnraisable(cb);
        }
        Py_XDECREF(r);
        Py_DECREF(cb);
    }
    PyGILState_Release(g);
}

static PyObject *shp_region_register_exit(shp_region_t *self, PyObject *cb)
{
    mf_status_t st;

    if (self->shm == NULL) {
        return pyh_raise(MF_ERR_STATE, NULL);
    }
    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "the exit callback is a callable "
                                         "(status, from_rank) or None");
        return NULL;
    }
    Py_XINCREF(cb == Py_None ? NULL : cb);
    Py_XSETREF(self->exit_cb, cb == Py_None ? NULL : cb);
    st = mf_shm_register_exit(self->shm, cb == Py_None ? NULL : shp_exit_cb,
                              self);
    return shp_done(st);
}

static PyObject *shp_region_global_exit(shp_region_t *self, PyObject *arg)
{
    long status = PyLong_AsLong(arg);
    mf_shm_t *shm;
    mf_status_t st;

    if (status == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((shm = shp_enter(self)) == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        st = mf_shm_global_exit(shm, (int)status);
    Py_END_ALLOW_THREADS
    shp_leave(self);
    return shp_done(st);
}

#define SHP_GETTER(_name, _expr)                                               \
    static PyObject *shp_region_##_name(shp_region_t *self, void *unused)      \
    {                                                                          \
        (void)unused;                                                          \
        if (self->shm == NULL) {                                               \
            return pyh_raise(MF_ERR_STATE, NULL);                              \
        }                                                                      \
        return PyLong_FromUnsignedLongLong(                                    \
            (unsigned long long)(_expr(self->shm)));                           \
    }

SHP_GETTER(rank, mf_shm_rank)
SHP_GETTER(world, mf_shm_world)
SHP_GETTER(gva, mf_shm_gva)
SHP_GETTER(stride, mf_shm_stride)
SHP_GETTER(size, mf_shm_size)

static PyObject *shp_region_closed(shp_region_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->shm == NULL);
}

static PyMethodDef shp_region_methods[] = {
    {"destroy", (PyCFunction)shp_region_destroy, METH_NOARGS,
     "destroy()\n--\n\nWithdraws this rank's part and frees the region here "
     "(not collective).  Idempotent."},
    {"ptr", (PyCFunction)shp_region_ptr, METH_O,
     "ptr(rank)\n--\n\nThe GVA of rank's part (a pointer where can_reach "
     "says MAPPED)."},
    {"put", (PyCFunction)shp_region_put, METH_VARARGS,
     "put(gva, data)\n--\n\nCopies data (a buffer or (address, size)) to the "
     "region at gva, any rank's part."},
    {"get_into", (PyCFunction)shp_region_get_into, METH_VARARGS,
     "get_into(gva, dest)\n--\n\nCopies len(dest) bytes from gva into dest "
     "(a writable buffer or (address, size))."},
    {"barrier", (PyCFunction)shp_region_barrier, METH_NOARGS,
     "barrier()\n--\n\nWaits for every rank of the world."},
    {"allgather", (PyCFunction)shp_region_allgather, METH_O,
     "allgather(data)\n--\n\nEvery rank's bytes of equal length, by rank."},
    {"group_barrier", (PyCFunction)shp_region_group_barrier, METH_VARARGS,
     "group_barrier(key, count)\n--\n\nA barrier of the count ranks that "
     "call it with key."},
    {"group_allgather", (PyCFunction)shp_region_group_allgather, METH_VARARGS,
     "group_allgather(key, index, count, data)\n--\n\nAn allgather of a "
     "subgroup; the list by index."},
    {"can_reach", (PyCFunction)shp_region_can_reach, METH_O,
     "can_reach(rank)\n--\n\n(flags, transport): REACH_SELF, REACH_MAPPED, "
     "REACH_TRANSPORT; raises MF_ERR_UNREACHABLE or MF_ERR_PEER_LOST."},
    {"atomic_add", (PyCFunction)shp_region_atomic_add, METH_VARARGS,
     "atomic_add(name, delta)\n--\n\nThe counter's new value."},
    {"atomic_cas", (PyCFunction)shp_region_atomic_cas, METH_VARARGS,
     "atomic_cas(name, expected, desired)\n--\n\n(swapped, value now)."},
    {"atomic_reset", (PyCFunction)shp_region_atomic_reset, METH_O,
     "atomic_reset(name)\n--\n\nDrops the counter (it reads 0 again)."},
    {"set_context", (PyCFunction)shp_region_set_context, METH_O,
     "set_context(data)\n--\n\nPublishes the region's context block."},
    {"get_context", PYH_KW(shp_region_get_context),
     METH_VARARGS | METH_KEYWORDS,
     "get_context(timeout_ms=0)\n--\n\nThe context block's bytes."},
    {"register_exit", (PyCFunction)shp_region_register_exit, METH_O,
     "register_exit(callback)\n--\n\ncallback(status, from_rank) runs when a "
     "rank calls global_exit; None: the process exits with the status."},
    {"global_exit", (PyCFunction)shp_region_global_exit, METH_O,
     "global_exit(status)\n--\n\nAsks every rank to exit with status."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef shp_region_getset[] = {
    {"rank", (getter)shp_region_rank, NULL, "This rank.", NULL},
    {"world", (getter)shp_region_world, NULL, "Ranks of the world.", NULL},
    {"gva", (getter)shp_region_gva, NULL, "Base of the window.", NULL},
    {"stride", (getter)shp_region_stride, NULL, "Distance of two parts.", NULL},
    {"size", (getter)shp_region_size, NULL, "Bytes of every part.", NULL},
    {"closed", (getter)shp_region_closed, NULL, "True once destroyed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject shp_region_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memfabric._shm.Region",
    .tp_basicsize = sizeof(shp_region_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Region(id, size, device=False, gva_base=0): a symmetric region "
              "of every rank of the world (collective); memfabric.bm_init "
              "first.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)shp_region_init,
    .tp_dealloc = (destructor)shp_region_dealloc,
    .tp_methods = shp_region_methods,
    .tp_getset = shp_region_getset,
};

static struct PyModuleDef shp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memfabric._shm",
    .m_doc = "SHM symmetric regions (libmemfabric) for the memfabric package.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__shm(void)
{
    PyObject *m;

    if (pyh_errors_init("MfError", shp_name, shp_str) != 0 ||
        PyType_Ready(&shp_region_type) != 0) {
        return NULL;
    }
    m = PyModule_Create(&shp_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&shp_region_type);
    if (PyModule_AddObject(m, "Region", (PyObject *)&shp_region_type) != 0 ||
        PyModule_AddIntConstant(m, "REACH_SELF", MF_SHM_REACH_SELF) != 0 ||
        PyModule_AddIntConstant(m, "REACH_MAPPED", MF_SHM_REACH_MAPPED) != 0 ||
        PyModule_AddIntConstant(m, "REACH_TRANSPORT", MF_SHM_REACH_TRANSPORT) !=
            0 ||
        PyModule_AddIntConstant(m, "CONTEXT_MAX", MF_SHM_CONTEXT_MAX) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
