using System.Text;

namespace InSpatialFs.Security.Rules;

/// <summary>Condition syntax tree (before macros and lists are expanded, and after).</summary>
internal abstract record Cond(int Offset);

internal sealed record AndCond(Cond Left, Cond Right) : Cond(Left.Offset);

internal sealed record OrCond(Cond Left, Cond Right) : Cond(Left.Offset);

internal sealed record NotCond(Cond Inner, int At) : Cond(At);

/// <summary>A bare name: a macro, or a boolean field used as a predicate.</summary>
internal sealed record NameCond(string Name, int At) : Cond(At);

internal sealed record ExistsCond(string Field, int At) : Cond(At);

internal sealed record CompareCond(string Field, string Op, Operand Value, int At, int OpAt) : Cond(At);

/// <summary>Constant true/false (an empty list after expansion, or a disabled exception).</summary>
internal sealed record ConstCond(bool Value, int At) : Cond(At);

internal abstract record Operand(int Offset);

/// <summary>A single value; <see cref="Quoted"/> values never name a list.</summary>
internal sealed record ValueOperand(string Text, bool Quoted, int At) : Operand(At);

internal sealed record ListOperand(IReadOnlyList<ValueOperand> Items, int At) : Operand(At);

/// <summary><c>$step.field</c>: the field of the event an earlier sequence step captured.</summary>
internal sealed record CaptureOperand(string Step, string Field, int At) : Operand(At);

internal sealed class ConditionSyntaxException(string message, int offset) : Exception(message)
{
    public int Offset { get; } = offset;
}

/// <summary>
/// Recursive-descent parser for Falco-style conditions:
/// <c>or := and ('or' and)*; and := not ('and' not)*; not := 'not' not | '(' or ')' | field op value | field exists | name</c>.
/// </summary>
internal sealed class ConditionParser
{
    internal static readonly HashSet<string> Operators =
        ["=", "==", "!=", "<", "<=", ">", ">=", "in", "contains", "icontains", "startswith", "endswith", "glob", "pmatch"];

    private readonly string _text;
    private int _pos;

    private ConditionParser(string text) => _text = text;

    public static Cond Parse(string text)
    {
        var p = new ConditionParser(text);
        Cond c = p.ParseOr();
        p.SkipSpace();
        if (p._pos < text.Length)
        {
            throw new ConditionSyntaxException($"unexpected '{p.Rest()}'", p._pos);
        }

        return c;
    }

    /// <summary>Parses an operand as written in an exception value: a (list), a list name, or one value.</summary>
    public static Operand ParseOperandText(string text, bool listContext)
    {
        var p = new ConditionParser(text);
        p.SkipSpace();
        Operand o = p.ParseOperand(listContext);
        p.SkipSpace();
        if (p._pos < text.Length)
        {
            return new ValueOperand(text, true, 0);
        }

        return o;
    }

    private string Rest() => _text[_pos..Math.Min(_text.Length, _pos + 20)];

    private void SkipSpace()
    {
        while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos]))
        {
            _pos++;
        }
    }

    private static bool IsOperatorChar(char c) => c is '=' or '!' or '<' or '>' or '~' or '&' or '|' or '^';

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-';

    private string PeekWord()
    {
        SkipSpace();
        int end = _pos;
        while (end < _text.Length && IsNameChar(_text[end]))
        {
            end++;
        }

        return _text[_pos..end];
    }

    private bool TakeKeyword(string keyword)
    {
        if (PeekWord() == keyword)
        {
            _pos += keyword.Length;
            return true;
        }

        return false;
    }

    private Cond ParseOr()
    {
        Cond left = ParseAnd();
        while (TakeKeyword("or"))
        {
            left = new OrCond(left, ParseAnd());
        }

        return left;
    }

    private Cond ParseAnd()
    {
        Cond left = ParseNot();
        while (TakeKeyword("and"))
        {
            left = new AndCond(left, ParseNot());
        }

        return left;
    }

    private Cond ParseNot()
    {
        SkipSpace();
        int at = _pos;
        if (TakeKeyword("not"))
        {
            return new NotCond(ParseNot(), at);
        }

        return ParsePrimary();
    }

    private Cond ParsePrimary()
    {
        SkipSpace();
        int at = _pos;
        if (_pos >= _text.Length)
        {
            throw new ConditionSyntaxException("condition ends where a term was expected", _pos);
        }

        if (_text[_pos] == '(')
        {
            _pos++;
            Cond inner = ParseOr();
            SkipSpace();
            if (_pos >= _text.Length || _text[_pos] != ')')
            {
                throw new ConditionSyntaxException("missing ')'", _pos);
            }

            _pos++;
            return inner;
        }

        string name = PeekWord();
        if (name.Length == 0)
        {
            throw new ConditionSyntaxException($"expected a field or macro name at '{Rest()}'", _pos);
        }

        if (name is "and" or "or")
        {
            throw new ConditionSyntaxException($"'{name}' needs a term before it", _pos);
        }

        _pos += name.Length;
        SkipSpace();
        int opAt = _pos;
        string op = ReadOperator();
        if (op.Length == 0)
        {
            return new NameCond(name, at);
        }

        if (op == "exists")
        {
            return new ExistsCond(name, at);
        }

        if (!Operators.Contains(op))
        {
            throw new ConditionSyntaxException($"unknown operator '{op}'", opAt);
        }

        if (op == "==")
        {
            op = "=";
        }

        SkipSpace();
        Operand value = ParseOperand(listContext: op is "in" or "pmatch");
        return new CompareCond(name, op, value, at, opAt);
    }

    /// <summary>Reads a symbolic or word operator; returns "" (and does not move) when the next word ends the term.</summary>
    private string ReadOperator()
    {
        if (_pos >= _text.Length)
        {
            return "";
        }

        char c = _text[_pos];
        if (IsOperatorChar(c))
        {
            // Take the whole run so "~=" or "=>" is reported as one unknown operator.
            int start = _pos;
            while (_pos < _text.Length && IsOperatorChar(_text[_pos]))
            {
                _pos++;
            }

            return _text[start.._pos];
        }

        string word = PeekWord();
        if (word.Length == 0 || word is "and" or "or" || c == ')')
        {
            return "";
        }

        _pos += word.Length;
        return word;
    }

    private Operand ParseOperand(bool listContext)
    {
        SkipSpace();
        int at = _pos;
        if (_pos >= _text.Length)
        {
            throw new ConditionSyntaxException("missing value after the operator", _pos);
        }

        if (_text[_pos] == '(')
        {
            _pos++;
            var items = new List<ValueOperand>();
            while (true)
            {
                SkipSpace();
                if (_pos < _text.Length && _text[_pos] == ')')
                {
                    _pos++;
                    break;
                }

                items.Add(ParseValue(inList: true));
                SkipSpace();
                if (_pos < _text.Length && _text[_pos] == ',')
                {
                    _pos++;
                }
                else if (_pos >= _text.Length || _text[_pos] != ')')
                {
                    throw new ConditionSyntaxException("expected ',' or ')' in a value list", _pos);
                }
            }

            return new ListOperand(items, at);
        }

        if (_text[_pos] == '$')
        {
            int start = ++_pos;
            while (_pos < _text.Length && IsNameChar(_text[_pos]))
            {
                _pos++;
            }

            string reference = _text[start.._pos];
            int dot = reference.IndexOf('.', StringComparison.Ordinal);
            if (dot <= 0 || dot == reference.Length - 1)
            {
                throw new ConditionSyntaxException($"a capture is $step.field, not '${reference}'", at);
            }

            return new CaptureOperand(reference[..dot], reference[(dot + 1)..], at);
        }

        ValueOperand v = ParseValue(inList: false);
        // A bare name after in/pmatch names a list: "proc.name in shell_binaries".
        return listContext && !v.Quoted ? new ListOperand([v], at) : v;
    }

    private ValueOperand ParseValue(bool inList)
    {
        SkipSpace();
        int at = _pos;
        if (_pos < _text.Length && _text[_pos] is '"' or '\'')
        {
            char quote = _text[_pos++];
            var sb = new StringBuilder();
            while (_pos < _text.Length && _text[_pos] != quote)
            {
                if (_text[_pos] == '\\' && _pos + 1 < _text.Length)
                {
                    _pos++;
                }

                sb.Append(_text[_pos++]);
            }

            if (_pos >= _text.Length)
            {
                throw new ConditionSyntaxException("unterminated string", at);
            }

            _pos++;
            return new ValueOperand(sb.ToString(), true, at);
        }

        int start = _pos;
        while (_pos < _text.Length && !char.IsWhiteSpace(_text[_pos]) && _text[_pos] != ')' && !(inList && _text[_pos] == ','))
        {
            _pos++;
        }

        if (_pos == start)
        {
            throw new ConditionSyntaxException("missing value", at);
        }

        return new ValueOperand(_text[start.._pos], false, at);
    }
}
