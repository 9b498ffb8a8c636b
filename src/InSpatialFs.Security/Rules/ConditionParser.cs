using System.Globalization;
using System.Text;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Recursive-descent parser for conditions, following the grammar of Falco's filter parser (libsinsp
/// <c>filter/parser.cpp</c>):
/// <code>
/// or    := and ('or' and)*                    and := not ('and' not)*
/// not   := ('not' blank)* ('not(' or ')' | check)
/// check := '(' or ')' | field cond | transformer '(' field ')' cond | identifier
/// cond  := 'exists' | op value | listop (list | identifier | transformer)
/// field := name ('.' name)+ ('[' arg ']')?
/// </code>
/// Two extensions of our own: a bare boolean field is a predicate (<c>evt.is_exec</c>), and <c>$step.field</c> names a
/// field of an event an earlier sequence step captured. Nesting is limited (<see cref="MaxDepth"/>), so a hostile
/// condition cannot exhaust the stack; and/or chains are n-ary, so their length costs no depth.
/// </summary>
internal sealed partial class ConditionParser
{
    /// <summary>Deepest nesting of parentheses and not() a condition may have.</summary>
    public const int MaxDepth = 200;

    private static readonly string[] Transformers = ["tolower", "toupper", "b64", "basename", "len"];

    private readonly string _text;
    private int _pos;
    private int _depth;

    private ConditionParser(string text) => _text = text;

    public static Cond Parse(string text)
    {
        var p = new ConditionParser(text);
        p.SkipBlank();
        if (p._pos >= text.Length)
        {
            throw new ConditionSyntaxException("the condition is empty", 0);
        }

        Cond c = p.ParseOr();
        p.SkipBlank();
        if (p._pos < text.Length)
        {
            throw new ConditionSyntaxException($"unexpected '{p.Rest()}', expecting 'and', 'or' or the end", p._pos);
        }

        return c;
    }

    /// <summary>Parses a right-hand side as written in an exception or list context; errors carry offsets in <paramref name="text"/>.</summary>
    public static Operand ParseListOperand(string text)
    {
        var p = new ConditionParser(text);
        p.SkipBlank();
        Operand o = p.ParseListValue();
        p.SkipBlank();
        if (p._pos < text.Length)
        {
            throw new ConditionSyntaxException($"unexpected '{p.Rest()}' after the list", p._pos);
        }

        return o;
    }

    /// <summary>Unescapes a quoted string the way Falco does (\b \f \n \r \t \\ \/ \" \' \xHH); <paramref name="quoted"/> includes the quotes.</summary>
    public static string Unescape(string quoted, int at)
    {
        var sb = new StringBuilder(quoted.Length);
        char delimiter = quoted[0];
        for (int i = 1; i < quoted.Length - 1; i++)
        {
            char c = quoted[i];
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }

            char e = quoted[++i];
            switch (e)
            {
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case ' ' or '\\': sb.Append('\\'); break;
                case '/': sb.Append('/'); break;
                case '"' or '\'' when e == delimiter: sb.Append(e); break;
                case 'x' when i + 2 < quoted.Length - 1
                    && byte.TryParse(quoted.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b):
                    sb.Append((char)b);
                    i += 2;
                    break;
                default:
                    throw new ConditionSyntaxException($"unsupported escape sequence '\\{e}' in a quoted string", at + i - 1);
            }
        }

        return sb.ToString();
    }

    private string Rest() => _text[_pos..Math.Min(_text.Length, _pos + 24)];

    private char Peek(int ahead = 0) => _pos + ahead < _text.Length ? _text[_pos + ahead] : '\0';

    private bool SkipBlank()
    {
        int start = _pos;
        while (_pos < _text.Length && _text[_pos] is ' ' or '\t' or '\b' or '\r' or '\n')
        {
            _pos++;
        }

        return _pos > start;
    }

    private bool At(string s) => string.CompareOrdinal(_text, _pos, s, 0, s.Length) == 0;

    private static bool IsIdentStart(char c) => char.IsAsciiLetter(c);

    private static bool IsIdentChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private void Enter()
    {
        if (++_depth > MaxDepth)
        {
            throw new ConditionSyntaxException($"the condition nests deeper than {MaxDepth} levels", _pos);
        }
    }

    /// <summary>A keyword ('and', 'or') followed by a blank or '('; the blank or '(' is not consumed.</summary>
    private bool TakeKeyword(string keyword)
    {
        if (!At(keyword))
        {
            return false;
        }

        char next = Peek(keyword.Length);
        if (IsIdentChar(next) || next == '.')
        {
            return false;
        }

        if (next is not (' ' or '\t' or '\r' or '\n' or '\b' or '('))
        {
            throw new ConditionSyntaxException($"expected a blank or '(' after '{keyword}'", _pos + keyword.Length);
        }

        _pos += keyword.Length;
        return true;
    }

    private Cond ParseOr()
    {
        Enter();
        int at = _pos;
        var children = new List<Cond> { ParseAnd() };
        SkipBlank();
        while (TakeKeyword("or"))
        {
            children.Add(ParseAnd());
            SkipBlank();
        }

        _depth--;
        return children.Count == 1 ? children[0] : new OrCond(children, at);
    }

    private Cond ParseAnd()
    {
        int at = _pos;
        SkipBlank();
        var children = new List<Cond> { ParseNot() };
        SkipBlank();
        while (TakeKeyword("and"))
        {
            children.Add(ParseNot());
            SkipBlank();
        }

        return children.Count == 1 ? children[0] : new AndCond(children, at);
    }

    private Cond ParseNot()
    {
        SkipBlank();
        int at = _pos;
        bool negate = false;
        while (At("not") && Peek(3) is ' ' or '\t' or '\r' or '\n' or '\b')
        {
            _pos += 3;
            SkipBlank();
            negate = !negate;
        }

        Cond child;
        if (At("not("))
        {
            _pos += 4;
            negate = !negate;
            child = ParseEmbedded();
        }
        else
        {
            child = ParseCheck();
        }

        return negate ? new NotCond(child, at) : child;
    }

    /// <summary>After '(': a full condition and its ')'.</summary>
    private Cond ParseEmbedded()
    {
        int open = _pos - 1;
        Cond inner = ParseOr();
        SkipBlank();
        if (Peek() != ')')
        {
            throw new ConditionSyntaxException(_pos >= _text.Length ? $"missing ')' for the '(' at offset {open}" : $"expected ')' at '{Rest()}'", _pos);
        }

        _pos++;
        return inner;
    }

    private Cond ParseCheck()
    {
        SkipBlank();
        int at = _pos;
        if (_pos >= _text.Length)
        {
            throw new ConditionSyntaxException("condition ends where a term was expected", _pos);
        }

        if (Peek() == '(')
        {
            _pos++;
            return ParseEmbedded();
        }

        if (TryFieldExpr(out FieldExpr? field))
        {
            return ParseCondition(field!, at);
        }

        if (IsIdentStart(Peek()))
        {
            int start = _pos;
            while (IsIdentChar(Peek()))
            {
                _pos++;
            }

            string name = _text[start.._pos];
            if (name is "and" or "or")
            {
                throw new ConditionSyntaxException($"'{name}' needs a term before it", start);
            }

            return new NameCond(name, start);
        }

        throw new ConditionSyntaxException($"expected '(', a field check or a macro name at '{Rest()}'", _pos);
    }

    /// <summary>A field name with its optional [argument], or a transformer applied to one.</summary>
    private bool TryFieldExpr(out FieldExpr? field)
    {
        field = null;
        int at = _pos;
        foreach (string t in Transformers)
        {
            if (At(t) && Peek(t.Length) == '(')
            {
                _pos += t.Length + 1;
                Enter();
                SkipBlank();
                if (!TryFieldExpr(out FieldExpr? inner))
                {
                    throw new ConditionSyntaxException($"expected a field inside {t}(...)", _pos);
                }

                SkipBlank();
                if (Peek() != ')')
                {
                    throw new ConditionSyntaxException($"expected ')' closing {t}(", _pos);
                }

                _pos++;
                _depth--;
                field = new FieldTransform(t, inner!, at);
                return true;
            }
        }

        if (!IsIdentStart(Peek()))
        {
            return false;
        }

        // name ('.' name)+ : at least one dot, each part starting with a letter.
        int end = _pos, parts = 0;
        while (true)
        {
            if (end >= _text.Length || !IsIdentStart(_text[end]))
            {
                break;
            }

            while (end < _text.Length && IsIdentChar(_text[end]))
            {
                end++;
            }

            parts++;
            if (end + 1 < _text.Length && _text[end] == '.' && IsIdentStart(_text[end + 1]))
            {
                end++;
                continue;
            }

            break;
        }

        if (parts < 2)
        {
            return false;
        }

        string name = _text[_pos..end];
        _pos = end;
        string? arg = null;
        if (Peek() == '[')
        {
            _pos++;
            int argAt = _pos;
            if (Peek() is '"' or '\'')
            {
                arg = ReadQuoted();
            }
            else
            {
                while (_pos < _text.Length && _text[_pos] is not (']' or '[' or '"' or '\'') && !char.IsWhiteSpace(_text[_pos]))
                {
                    _pos++;
                }

                arg = _text[argAt.._pos];
                if (arg.Length == 0)
                {
                    throw new ConditionSyntaxException("expected a field argument: a quoted string or a bare string", argAt);
                }
            }

            if (Peek() != ']')
            {
                throw new ConditionSyntaxException($"expected ']' closing the argument of {name}", _pos);
            }

            _pos++;
        }

        field = new FieldName(name, arg, at);
        return true;
    }

    private static readonly string[] SymbolOperators = ["==", "!=", "<=", ">=", "=", "<", ">"];

    private static bool IsOperatorChar(char c) => c is '=' or '!' or '<' or '>' or '~' or '&' or '|' or '^';

    private Cond ParseCondition(FieldExpr field, int at)
    {
        SkipBlank();
        int opAt = _pos;
        if (_pos >= _text.Length || Peek() == ')' || (At("and") && !IsIdentChar(Peek(3))) || (At("or") && !IsIdentChar(Peek(2))))
        {
            return new BoolFieldCond(field, at);
        }

        string opText;
        if (IsOperatorChar(Peek()))
        {
            // Falco takes the first operator the text starts with ("=<" is '=' then the value '<');
            // a run of operator characters that starts with none of them is one unknown operator.
            opText = SymbolOperators.FirstOrDefault(At) ?? "";
            if (opText.Length == 0)
            {
                int start = _pos;
                while (IsOperatorChar(Peek()))
                {
                    _pos++;
                }

                throw new ConditionSyntaxException($"unknown operator '{_text[start.._pos]}' ({CmpOps.Known})", opAt, badOperator: true);
            }

            _pos += opText.Length;
        }
        else if (IsIdentStart(Peek()))
        {
            int start = _pos;
            while (IsIdentChar(Peek()))
            {
                _pos++;
            }

            opText = _text[start.._pos];
            if (opText == "exists")
            {
                return new ExistsCond(field, at);
            }
        }
        else
        {
            throw new ConditionSyntaxException($"expected an operator after {field.Text} ({CmpOps.Known})", _pos, badOperator: true);
        }

        if (!CmpOps.TryParse(opText, out CmpOp op))
        {
            throw new ConditionSyntaxException($"unknown operator '{opText}' ({CmpOps.Known})", opAt, badOperator: true);
        }

        bool blank = SkipBlank();
        if (char.IsAsciiLetter(opText[0]) && !blank && !op.TakesList() && Peek() is not ('"' or '\''))
        {
            throw new ConditionSyntaxException($"expected a blank after '{opText}'", _pos);
        }

        Operand value = op.TakesList() ? ParseListValue() : ParseScalarValue();
        return new CompareCond(field, op, value, at, opAt);
    }

}
