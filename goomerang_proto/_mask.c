/* RFC 6455 section 5.3 masking in C: the compiled build's accelerator for frames.py.
 *
 * Built with the mypyc extensions (setup.py compiled_extensions, `make compiled`,
 * GOOMERANG_COMPILE=1 pip install .); frames.py falls back to its pure-Python
 * big-integer XOR when this module is absent, and tests/proto/test_mask_accel.py
 * checks both give the same bytes. Every offset is checked against the buffer's
 * length before a byte is read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* dst[i] = src[i] ^ key[i % 4] for i < length; eight bytes at a time, then the tail. */
static void
xor_key(unsigned char *dst, const unsigned char *src, Py_ssize_t length,
        const unsigned char *key)
{
    uint32_t k32;
    uint64_t k64, x;
    Py_ssize_t i = 0;

    memcpy(&k32, key, 4);
    k64 = ((uint64_t)k32 << 32) | k32; /* both halves equal: right on either byte order */
    for (; i + 8 <= length; i += 8) {
        memcpy(&x, src + i, 8);
        x ^= k64;
        memcpy(dst + i, &x, 8);
    }
    for (; i < length; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

static int
get_index(PyObject *arg, const char *name, Py_ssize_t *out)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    *out = PyLong_AsSsize_t(arg);
    if (*out == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(unmask_at_doc,
"unmask_at(buf, start, length) -> bytes\n\n"
"The ``length`` payload bytes after the 4-byte masking key at buf[start:start + 4],\n"
"unmasked (RFC 6455 5.3). ``buf``: any bytes-like object. Raises ValueError when\n"
"start < 0, length < 0 or start + 4 + length > len(buf); TypeError on other types.");

static PyObject *
unmask_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, length;
    PyObject *result = NULL;
    const unsigned char *key;

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "unmask_at() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (get_index(args[1], "start", &start) < 0 || get_index(args[2], "length", &length) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || length < 0 || view.len < 4 || start > view.len - 4
        || length > view.len - 4 - start) {
        PyErr_Format(PyExc_ValueError,
                     "unmask_at: key at %zd and %zd payload bytes do not fit in %zd bytes",
                     start, length, view.len);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, length);
    if (result == NULL) {
        goto done;
    }
    key = (const unsigned char *)view.buf + start;
    xor_key((unsigned char *)PyBytes_AS_STRING(result), key + 4, length, key);
done:
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(mask_doc,
"mask(payload, key) -> bytes\n\n"
"``payload`` XOR the 4-byte ``key`` repeated (RFC 6455 5.3: masking and unmasking are\n"
"the same operation). Both bytes-like. Raises ValueError when ``key`` is not 4 bytes.");

static PyObject *
mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer payload, key;
    PyObject *result = NULL;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "mask() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    if (key.len != 4) {
        PyErr_Format(PyExc_ValueError, "mask: the key must be 4 bytes, not %zd", key.len);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, payload.len);
    if (result == NULL) {
        goto done;
    }
    xor_key((unsigned char *)PyBytes_AS_STRING(result), (const unsigned char *)payload.buf,
            payload.len, (const unsigned char *)key.buf);
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&payload);
    return result;
}

static PyMethodDef methods[] = {
    {"unmask_at", (PyCFunction)(void (*)(void))unmask_at, METH_FASTCALL, unmask_at_doc},
    {"mask", (PyCFunction)(void (*)(void))mask, METH_FASTCALL, mask_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "goomerang_proto._mask",
    "RFC 6455 masking in C (the compiled build's accelerator for goomerang_proto.frames).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__mask(void)
{
    return PyModuleDef_Init(&module_def);
}
