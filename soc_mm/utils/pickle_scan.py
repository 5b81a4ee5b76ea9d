"""Static scan of a pickle stream: which globals it references and which ones it calls.

Read with ``pickletools.genops`` (nothing is unpickled) and a symbolic stack: every opcode pops and pushes
what ``pickletools`` says it does, strings and globals are followed through the memo, so that the callee
of each ``REDUCE`` / ``NEWOBJ`` / ``NEWOBJ_EX`` / ``OBJ`` / ``INST`` is known by name. torch's
``weights_only`` unpickler calls any allow-listed global it is asked to call (``bytearray(n)``,
``torch.FloatStorage(n)``, a legacy tensor constructor ...), so a checkpoint loader must decide separately
what may be referenced (e.g. a storage type inside a persistent id) and what may be called.
"""
import io
import pickletools
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from typing import List, NamedTuple, Tuple

#: a callee that is not a global read from the pickle itself (built, stored in a container, ...)
DYNAMIC = '<dynamic>'

_STRING_OPS = frozenset({'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'STRING', 'BINSTRING',
                         'SHORT_BINSTRING'})
_PUT_OPS = frozenset({'PUT', 'BINPUT', 'LONG_BINPUT'})
_GET_OPS = frozenset({'GET', 'BINGET', 'LONG_BINGET'})


class PickleScan(NamedTuple):
    """``referenced``: every global the pickle names (in order, with repeats); ``called``: the global of every
    call it makes (``DYNAMIC`` when the callee is not a global); ``calls``: the same with the opcode that
    makes each call (``'REDUCE'``, ``'NEWOBJ'``, ...); ``build_problems``: ``BUILD`` opcodes (which set an
    object's state: ``__setstate__`` or attributes) on anything but an object the pickle has just made by a
    call, or on the same object twice (``pickle`` itself builds each object once, right after making it; a
    second ``BUILD`` can change, e.g., a numpy dtype that an array already uses)."""
    referenced: List[str]
    called: List[str]
    calls: List[Tuple[str, str]]
    build_problems: List[str]


class _Mark:
    """The MARK on the symbolic stack."""


_MARK = _Mark()


def map_global_name(module: str, name: str) -> str:
    """Python-2 names as the unpickler maps them (``__builtin__.getattr`` -> ``builtins.getattr``)."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f'{module}.{name}'


def _pop_to_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise ValueError('pickle: MARK expected on the stack')


def _pop(stack: list, count: int = 1) -> list:
    if count > len(stack) or any(item is _MARK for item in stack[len(stack) - count:]):
        raise ValueError('pickle: stack underflow')
    items = stack[len(stack) - count:]
    del stack[len(stack) - count:]
    return items


def scan_pickle(stream: io.BufferedIOBase) -> PickleScan:
    """Scan one pickle in ``stream`` up to its STOP opcode.

    Raises:
        ValueError: not a pickle, truncated, or an opcode sequence the unpickler would reject
            (stack underflow, no MARK).
    """
    referenced, calls, build_problems = [], [], []
    stack, memo, built = [], {}, set()
    made = [0]

    def callee(value, opcode: str) -> tuple:
        """Record the call of ``value``; the symbol of the object it makes (``('object', uid, name)``)."""
        if isinstance(value, tuple) and value[0] == 'fetched':  # a global read back from the memo
            value = value[1]
        name = value[1] if isinstance(value, tuple) and value[0] == 'global' else DYNAMIC
        calls.append((name, opcode))
        made[0] += 1
        return ('object', made[0], name)

    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        if name in _STRING_OPS:
            stack.append(('str', arg))
        elif name == 'GLOBAL':
            module, _, qualname = arg.partition(' ')
            full = map_global_name(module, qualname)
            referenced.append(full)
            stack.append(('global', full))
        elif name == 'STACK_GLOBAL':
            module, qualname = (v[1] if v[0] == 'fetched' else v for v in _pop(stack, 2))
            if module[0] == 'str' and qualname[0] == 'str' and isinstance(module[1], str) \
                    and isinstance(qualname[1], str):
                full = map_global_name(module[1], qualname[1])
            else:
                full = '<dynamic STACK_GLOBAL>'
            referenced.append(full)
            stack.append(('global', full))
        elif name in ('EXT1', 'EXT2', 'EXT4'):
            full = f'<copyreg extension {arg}>'
            referenced.append(full)
            stack.append(('global', full))
        elif name == 'INST':
            module, _, qualname = arg.partition(' ')
            full = map_global_name(module, qualname)
            referenced.append(full)
            calls.append((full, 'INST'))
            made[0] += 1
            _pop_to_mark(stack)
            stack.append(('object', made[0], full))
        elif name == 'OBJ':
            items = _pop_to_mark(stack)
            if not items:
                raise ValueError('pickle: OBJ without a class')
            stack.append(callee(items[0], 'OBJ'))
        elif name == 'REDUCE':
            func, _args = _pop(stack, 2)
            stack.append(callee(func, 'REDUCE'))
        elif name == 'NEWOBJ':
            cls, _args = _pop(stack, 2)
            stack.append(callee(cls, 'NEWOBJ'))
        elif name == 'NEWOBJ_EX':
            cls, _args, _kwargs = _pop(stack, 3)
            stack.append(callee(cls, 'NEWOBJ_EX'))
        elif name in _PUT_OPS:
            if not stack or stack[-1] is _MARK:
                raise ValueError('pickle: PUT on an empty stack')
            memo[arg] = stack[-1]
        elif name == 'MEMOIZE':
            if not stack or stack[-1] is _MARK:
                raise ValueError('pickle: MEMOIZE on an empty stack')
            memo[len(memo)] = stack[-1]
        elif name in _GET_OPS:
            if arg not in memo:
                raise ValueError(f'pickle: memo key {arg} read before it is written')
            stack.append(('fetched', memo[arg]))
        elif name == 'BUILD':
            _pop(stack)  # the state
            if not stack or stack[-1] is _MARK:
                raise ValueError('pickle: BUILD without an object')
            target = stack[-1]
            if target[0] != 'object':
                kind = 'an object read back from the memo' if target[0] == 'fetched' else f'a {target[0]}'
                build_problems.append(f'BUILD of {kind} (pickle builds an object right after making it)')
            elif target[1] in built:
                build_problems.append(f'a second BUILD of one {target[2]} object')
            else:
                built.add(target[1])
        elif name == 'MARK':
            stack.append(_MARK)
        elif name == 'STOP':
            break
        else:  # everything else: pop and push what pickletools documents (values become opaque)
            before = opcode.stack_before
            if pickletools.markobject in before:
                _pop_to_mark(stack)
                before = before[:before.index(pickletools.markobject)]
            popped = _pop(stack, len(before))
            after = opcode.stack_after
            if name in ('APPEND', 'APPENDS', 'SETITEM', 'SETITEMS', 'ADDITEMS') and popped:
                stack.append(popped[0])  # the container stays (still the object a call made)
            else:
                stack.extend(('value', ) for _ in after)
    return PickleScan(referenced, [name for name, _ in calls], calls, build_problems)


def pickle_globals(stream: io.BufferedIOBase) -> List[str]:
    """Every global one pickle in ``stream`` references (``scan_pickle(...).referenced``)."""
    return scan_pickle(stream).referenced


__all__ = ['DYNAMIC', 'PickleScan', 'map_global_name', 'pickle_globals', 'scan_pickle']
