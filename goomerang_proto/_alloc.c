/* Instances without their __init__ call, in C: the compiled build's accelerator for
 * the per-message objects (the engine's Message and events, the server's Sender).
 *
 * new_instance(cls) is object.__new__(cls) for a class that keeps object's __new__
 * (the per-message classes: plain __slots__ classes): the same checks that matter
 * here and the same allocation (cls->tp_alloc, which zeroes the slots and tracks
 * the object for the cyclic GC), without the argument tuple that calling
 * object.__new__ builds. Built with the mypyc extensions (setup.py ACCELERATORS);
 * goomerang_proto.instances falls back to object.__new__ when it is absent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyDoc_STRVAR(new_instance_doc,
"new_instance(cls) -> cls instance\n\n"
"object.__new__(cls): a new instance whose __init__ has not run (its slots unset).\n"
"Raises TypeError when ``cls`` is not a class, defines its own __new__ or is abstract.");

static PyObject *
new_instance(PyObject *module, PyObject *arg)
{
    PyTypeObject *type;

    (void)module;
    if (!PyType_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "new_instance() takes a class, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    type = (PyTypeObject *)arg;
    if (type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_Format(PyExc_TypeError, "new_instance(%.100s): the class has its own __new__",
                     type->tp_name);
        return NULL;
    }
    if (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT) {
        PyErr_Format(PyExc_TypeError, "new_instance(%.100s): the class is abstract",
                     type->tp_name);
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static PyMethodDef methods[] = {
    {"new_instance", new_instance, METH_O, new_instance_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "goomerang_proto._alloc",
    "Instances without their __init__ call, in C (the compiled build's accelerator for the "
    "per-message objects).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__alloc(void)
{
    return PyModuleDef_Init(&module_def);
}
