/*
 * Helpers shared by the two extension modules (_memfabric, _memcache):
 * raising the package's status exceptions, turning Python objects into
 * memory ranges (buffer-protocol objects, raw integer addresses, device
 * arrays exporting __cuda_array_interface__) and keeping the buffer views
 * alive while the GIL is released.
 *
 * Invariants: every Py_buffer taken through pyh_views_* is released by
 * pyh_views_release() on every path; a range made from an integer address
 * or a device array holds no view (the caller owns that memory); device
 * memory is only ever passed on as an address, never read, written or
 * wrapped in a Python buffer here.  Everything here is static
 * so that each module carries its own copy: the two modules link different
 * libraries and share no C state.
 */
#ifndef MF_PYTHON_PYHELP_H
#define MF_PYTHON_PYHELP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <memfabric/mf_status.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The call-through cast of METH_VARARGS | METH_KEYWORDS functions. */
#define PYH_KW(fn) ((PyCFunction)(void (*)(void))(fn))

typedef const char *(*pyh_name_fn)(int status);

/* The exception class (memfabric._errors.MfError or MmcError) and the
 * functions that name a status, set once at module init. */
typedef struct pyh_errors {
    PyObject *cls;
    pyh_name_fn name;
    pyh_name_fn str;
} pyh_errors_t;

/* One per module, whatever number of files it is built from. */
__attribute__((weak, visibility("hidden"))) pyh_errors_t pyh_err;

static inline int pyh_errors_init(const char *cls_name, pyh_name_fn name,
                                  pyh_name_fn str)
{
    PyObject *mod = PyImport_ImportModule("memfabric._errors");

    if (mod == NULL) {
        return -1;
    }
    pyh_err.cls = PyObject_GetAttrString(mod, cls_name);
    Py_DECREF(mod);
    if (pyh_err.cls == NULL) {
        return -1;
    }
    pyh_err.name = name;
    pyh_err.str = str;
    return 0;
}

/* Raises the status exception for st with message msg (NULL: the
 * status's description); results (a list, may be NULL) is attached as
 * .results.  Always returns NULL. */
static inline PyObject *pyh_raise_msg(int st, const char *msg,
                                      PyObject *results)
{
    PyObject *exc =
        PyObject_CallFunction(pyh_err.cls, "iss", st, pyh_err.name(st),
                              msg != NULL ? msg : pyh_err.str(st));

    if (exc == NULL) {
        return NULL;
    }
    if (results != NULL &&
        PyObject_SetAttrString(exc, "results", results) != 0) {
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_SetObject(pyh_err.cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Raises the status exception for st; results as pyh_raise_msg. */
static inline PyObject *pyh_raise(int st, PyObject *results)
{
    return pyh_raise_msg(st, NULL, results);
}

/* ------------------------------------------------------------ buffers */

/* The views taken for one call. */
typedef struct pyh_views {
    Py_buffer *v;
    size_t n;
    size_t cap;
} pyh_views_t;

static inline void pyh_views_release(pyh_views_t *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        PyBuffer_Release(&vs->v[i]);
    }
    PyMem_Free(vs->v);
    vs->v = NULL;
    vs->n = vs->cap = 0;
}

/* Takes a C-contiguous view of obj (writable when asked) and keeps it in
 * vs.  0, or -1 with an exception set. */
static inline int pyh_views_take(pyh_views_t *vs, PyObject *obj, int writable,
                                 void **addr_p, size_t *len_p)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);

    if (vs->n == vs->cap) {
        size_t cap = vs->cap == 0 ? 8 : 2 * vs->cap;
        Py_buffer *grown = PyMem_Realloc(vs->v, cap * sizeof(Py_buffer));

        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        vs->v = grown;
        vs->cap = cap;
    }
    if (PyObject_GetBuffer(obj, &vs->v[vs->n], flags) != 0) {
        return -1;
    }
    *addr_p = vs->v[vs->n].buf;
    *len_p = (size_t)vs->v[vs->n].len;
    vs->n++;
    return 0;
}

/* An integer address: a non-negative int.  0 or -1 (exception set). */
static inline int pyh_addr(PyObject *obj, uint64_t *addr_p)
{
    unsigned long long v;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "an address must be an int, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError,
                        "an address must be a non-negative 64-bit int");
        return -1;
    }
    *addr_p = (uint64_t)v;
    return 0;
}

static inline int pyh_size(PyObject *obj, size_t *size_p)
{
    size_t v;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "a size must be an int, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsSize_t(obj);
    if (v == (size_t)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "a size must be a non-negative int");
        return -1;
    }
    *size_p = v;
    return 0;
}

/*
 * One memory range: a buffer-protocol object (its whole contents), or a
 * 2-tuple (address: int, size: int).  0, or -1 with an exception set.
 */
static inline int pyh_range(pyh_views_t *vs, PyObject *obj, int writable,
                            void **addr_p, size_t *len_p)
{
    if (PyTuple_Check(obj)) {
        uint64_t addr;

        if (PyTuple_GET_SIZE(obj) != 2) {
            PyErr_SetString(PyExc_ValueError,
                            "a memory range tuple is (address, size)");
            return -1;
        }
        if (pyh_addr(PyTuple_GET_ITEM(obj, 0), &addr) != 0 ||
            pyh_size(PyTuple_GET_ITEM(obj, 1), len_p) != 0) {
            return -1;
        }
        *addr_p = (void *)(uintptr_t)addr;
        return 0;
    }
    if (PyLong_Check(obj)) {
        PyErr_SetString(PyExc_TypeError,
                        "a raw address needs a size: pass (address, size)");
        return -1;
    }
    return pyh_views_take(vs, obj, writable, addr_p, len_p);
}

/* ------------------------------------------------------ device arrays */

/* What an object exporting __cuda_array_interface__ (versions 0 to 3)
 * describes: one C-contiguous range of device memory. */
typedef struct pyh_cuda_array {
    uint64_t addr;
    size_t len;      /* bytes: the product of the shape times the item size */
    int readonly;    /* the exporter forbids writing into it */
    uint64_t stream; /* to wait for before use: 0 none, 1 the legacy default
                        stream, 2 the per-thread one, else a CUstream */
} pyh_cuda_array_t;

/* An entry of the interface's dict, borrowed; NULL (no exception) when it
 * is absent or None. */
static inline PyObject *pyh_cai_get(PyObject *cai, const char *name)
{
    PyObject *v = PyDict_GetItemString(cai, name);

    return v == Py_None ? NULL : v;
}

/* A non-negative int of the interface.  0, or -1 with ValueError set. */
static inline int pyh_cai_size(PyObject *v, const char *what, size_t *size_p)
{
    size_t n = PyLong_Check(v) ? PyLong_AsSize_t(v) : (size_t)-1;

    if (n == (size_t)-1) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "__cuda_array_interface__: %s must be non-negative ints",
                     what);
        return -1;
    }
    *size_p = n;
    return 0;
}

/* The item size of a NumPy type string such as '<f2' or '|u1'. */
static inline int pyh_cai_itemsize(PyObject *typestr, size_t *size_p)
{
    const char *s = PyUnicode_Check(typestr) ? PyUnicode_AsUTF8(typestr) : NULL;
    unsigned long n = 0;
    char *end = NULL;

    if (s != NULL && strlen(s) >= 3 && strchr("<>|=", s[0]) != NULL &&
        s[2] >= '0' && s[2] <= '9') {
        n = strtoul(s + 2, &end, 10);
    }
    if (n == 0 || end == NULL || *end != '\0') {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "__cuda_array_interface__: typestr %R is not a NumPy "
                     "type string such as '<f2'",
                     typestr);
        return -1;
    }
    *size_p = n;
    return 0;
}

/* Bytes of the array from shape and item size; refuses strides other than
 * C-contiguous ones (a dimension of extent 1 may have any stride, an empty
 * array any strides).  0, or -1 with ValueError set. */
static inline int pyh_cai_extent(PyObject *shape, PyObject *strides,
                                 size_t itemsize, size_t *len_p)
{
    size_t len = itemsize, expect = itemsize, dim;
    Py_ssize_t n;

    if (!PyTuple_Check(shape) ||
        (strides != NULL &&
         (!PyTuple_Check(strides) ||
          PyTuple_GET_SIZE(strides) != PyTuple_GET_SIZE(shape)))) {
        PyErr_SetString(PyExc_ValueError,
                        "__cuda_array_interface__: shape and strides must "
                        "be tuples of one length");
        return -1;
    }
    n = PyTuple_GET_SIZE(shape);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pyh_cai_size(PyTuple_GET_ITEM(shape, i), "shape", &dim) != 0) {
            return -1;
        }
        if (__builtin_mul_overflow(len, dim, &len)) {
            PyErr_SetString(PyExc_ValueError,
                            "__cuda_array_interface__: the size overflows");
            return -1;
        }
    }
    for (Py_ssize_t i = n - 1; strides != NULL && len > 0 && i >= 0; i--) {
        PyObject *stride = PyTuple_GET_ITEM(strides, i);

        dim = PyLong_AsSize_t(PyTuple_GET_ITEM(shape, i)); /* checked */
        if (dim == 1) {
            continue;
        }
        if (!PyLong_Check(stride) || PyLong_AsSize_t(stride) != expect) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "__cuda_array_interface__: strides %R are not "
                         "C-contiguous for shape %R (make the array "
                         "contiguous first)",
                         strides, shape);
            return -1;
        }
        expect *= dim;
    }
    *len_p = len;
    return 0;
}

/*
 * Reads obj's __cuda_array_interface__ (versions 0 to 3; 'data', 'shape',
 * 'typestr' required; 'strides' None or C-contiguous; no 'mask').  1 with
 * *arr_p filled, 0 when obj exports no such interface, -1 with an
 * exception set when it is unusable.  Nothing here touches the memory.
 */
static inline int pyh_cuda_array(PyObject *obj, pyh_cuda_array_t *arr_p)
{
    PyObject *cai = PyObject_GetAttrString(obj, "__cuda_array_interface__");
    PyObject *data, *shape, *typestr, *stream;
    size_t itemsize;
    int rc = -1;

    if (cai == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    if (!PyDict_Check(cai)) {
        PyErr_Format(PyExc_TypeError,
                     "__cuda_array_interface__ must be a dict, not %s",
                     Py_TYPE(cai)->tp_name);
        goto out;
    }
    data = pyh_cai_get(cai, "data");
    shape = pyh_cai_get(cai, "shape");
    typestr = pyh_cai_get(cai, "typestr");
    if (data == NULL || shape == NULL || typestr == NULL) {
        PyErr_SetString(PyExc_ValueError, "__cuda_array_interface__ lacks "
                                          "'data', 'shape' or 'typestr'");
        goto out;
    }
    if (pyh_cai_get(cai, "mask") != NULL) {
        PyErr_SetString(PyExc_ValueError, "__cuda_array_interface__: masked "
                                          "arrays are not supported");
        goto out;
    }
    if (!PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2 ||
        !PyLong_Check(PyTuple_GET_ITEM(data, 0))) {
        PyErr_SetString(PyExc_ValueError, "__cuda_array_interface__: data "
                                          "must be (pointer: int, readonly)");
        goto out;
    }
    arr_p->addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(data, 0));
    if (arr_p->addr == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "__cuda_array_interface__: the data "
                                          "pointer must be a 64-bit address");
        goto out;
    }
    arr_p->readonly = PyObject_IsTrue(PyTuple_GET_ITEM(data, 1));
    if (arr_p->readonly < 0 || pyh_cai_itemsize(typestr, &itemsize) != 0 ||
        pyh_cai_extent(shape, pyh_cai_get(cai, "strides"), itemsize,
                       &arr_p->len) != 0) {
        goto out;
    }
    arr_p->stream = 0;
    stream = pyh_cai_get(cai, "stream");
    if (stream != NULL) {
        arr_p->stream = PyLong_Check(stream) ? PyLong_AsUnsignedLongLong(stream)
                                             : (unsigned long long)-1;
        if (arr_p->stream == 0 || arr_p->stream == (uint64_t)-1) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "__cuda_array_interface__: stream %R is not a "
                         "stream (0 is disallowed by the protocol)",
                         stream);
            goto out;
        }
    }
    rc = 1;
out:
    Py_DECREF(cai);
    return rc;
}

/* cuStreamSynchronize of the CUDA driver. */
typedef int (*pyh_cu_stream_sync_fn)(void *stream);

/*
 * Waits until the work queued on a stream named by a device array has
 * finished: version 3 of the interface makes the consumer synchronise
 * before it uses the memory.  The driver is the one the libraries load
 * ($MF_CUDA_LIBRARY, else libcuda.so.1), already loaded by whoever made
 * the array; it stays loaded.  Blocks with the GIL released.  0, or -1
 * with the status exception set.
 */
static inline int pyh_cuda_stream_wait(uint64_t stream)
{
    static pyh_cu_stream_sync_fn sync; /* set once, under the GIL */
    char msg[160];
    int res;

    if (stream == 0) {
        return 0;
    }
    if (sync == NULL) {
        const char *path = getenv("MF_CUDA_LIBRARY");
        void *lib;

        if (path == NULL || *path == '\0') {
            path = "libcuda.so.1";
        }
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (lib != NULL) {
            *(void **)&sync = dlsym(lib, "cuStreamSynchronize");
        }
        if (sync == NULL) {
            snprintf(msg, sizeof(msg),
                     "cannot wait for the device array's stream: no "
                     "cuStreamSynchronize in %s",
                     path);
            if (lib != NULL) {
                dlclose(lib);
            }
            pyh_raise_msg(MF_ERR_UNSUPPORTED, msg, NULL);
            return -1;
        }
    }
    Py_BEGIN_ALLOW_THREADS
        res = sync((void *)(uintptr_t)stream);
    Py_END_ALLOW_THREADS
    if (res != 0) {
        snprintf(msg, sizeof(msg),
                 "cuStreamSynchronize(0x%llx) of a device array failed: "
                 "CUresult %d",
                 (unsigned long long)stream, res);
        pyh_raise_msg(MF_ERR_IO, msg, NULL);
        return -1;
    }
    return 0;
}

/* A key: str (UTF-8) or bytes, without NUL.  Borrowed pointer valid while
 * obj lives.  0 or -1. */
static inline int pyh_key(PyObject *obj, const char **key_p)
{
    const char *s;
    Py_ssize_t len;

    if (PyUnicode_Check(obj)) {
        s = PyUnicode_AsUTF8AndSize(obj, &len);
        if (s == NULL) {
            return -1;
        }
    } else if (PyBytes_Check(obj)) {
        s = PyBytes_AS_STRING(obj);
        len = PyBytes_GET_SIZE(obj);
    } else {
        PyErr_Format(PyExc_TypeError, "a key must be str or bytes, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (strlen(s) != (size_t)len) {
        PyErr_SetString(PyExc_ValueError, "a key must not contain NUL");
        return -1;
    }
    *key_p = s;
    return 0;
}

/* A tuple holding the items of a sequence (so that no other thread can
 * change them while the GIL is released).  New reference or NULL. */
static inline PyObject *pyh_tuple(PyObject *seq, const char *what)
{
    if (PyUnicode_Check(seq) || PyBytes_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s must be a sequence, not %s", what,
                     Py_TYPE(seq)->tp_name);
        return NULL;
    }
    return PySequence_Tuple(seq);
}

/* A list of ints from count C ints.  New reference or NULL. */
static inline PyObject *pyh_int_list(const int *v, size_t count)
{
    PyObject *list = PyList_New((Py_ssize_t)count);

    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *item = PyLong_FromLong(v[i]);

        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* The text form of a setting's value: str(), but booleans as
 * "true" / "false".  New reference or NULL. */
static inline PyObject *pyh_setting_str(PyObject *value)
{
    if (PyBool_Check(value)) {
        return PyUnicode_FromString(value == Py_True ? "true" : "false");
    }
    return PyObject_Str(value);
}

/* Text written by a function that prints to a FILE.  New str or NULL. */
static inline PyObject *pyh_capture(void (*fn)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    PyObject *res;

    if (f == NULL) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    fn(f);
    fclose(f);
    res = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    free(text);
    return res;
}

#endif /* MF_PYTHON_PYHELP_H */
