using System.Diagnostics;
using System.Globalization;
using DeerSharp.IO;
using DeerSharp.Training;

namespace DeerSharp.Samples.Memorisation;

/// <summary>What one training step gave.</summary>
internal readonly record struct StepOutcome(double Loss, double Accuracy, IReadOnlyList<float[]> Gradients);

/// <summary>
/// Adam, clipping, the convergence rule, progress lines and a checkpoint for one model at one length. The checkpoint
/// (safetensors: the parameters, Adam's moments, and the step, streak and elapsed time as metadata) is written every
/// <c>saveEvery</c> seconds and at the end, to a temporary file then renamed; a run that finds one resumes from it.
/// Minibatch k is drawn from its own seed, so a resumed run sees the batches an unbroken one would have.
/// </summary>
internal sealed class TrainingLoop(string name, int length, ParameterSet<float> parameters, string? checkpoint, double saveEverySeconds, double adamEpsilon)
{
    public string Run(Func<Random, StepOutcome> step, int maxSteps, double maxMinutes, int seed)
    {
        var adam = new Adam<float>(parameters.Arrays, learningRate: 0.01, epsilon: adamEpsilon);
        int streak = 0, done = 0;
        double before = 0;
        if (checkpoint is not null && File.Exists(checkpoint))
        {
            (done, streak, before) = Load(checkpoint, adam);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  resumed from {checkpoint}: {done} steps done, {before:F0} s spent, {streak} perfect in a row"));
        }

        var clock = Stopwatch.StartNew();
        var lastSave = Stopwatch.StartNew();
        double Elapsed() => before + clock.Elapsed.TotalSeconds;
        bool Solved() => streak >= DeerSharp.Training.Memorisation.PerfectBatchesToConverge;
        while (done < maxSteps && !Solved() && Elapsed() < maxMinutes * 60)
        {
            var started = Stopwatch.StartNew();
            StepOutcome r = step(new Random(BatchSeed(seed, done)));
            if (!double.IsFinite(r.Loss))
            {
                throw new ArithmeticException($"{name} at T = {length}: the loss became {r.Loss} at step {done}.");
            }

            GradientClipping.ClipByGlobalNorm(r.Gradients, 1.0);
            adam.Step(r.Gradients);
            streak = r.Accuracy == 1 ? streak + 1 : 0;
            done++;
            double seconds = started.Elapsed.TotalSeconds;
            if (seconds > 0.5 || done % 10 == 0 || Solved())
            {
                double perStep = Elapsed() / done, left = Math.Max(0, Math.Min((maxSteps - done) * perStep, maxMinutes * 60 - Elapsed()));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  step {done,5}  loss {r.Loss,7:F4}  accuracy {r.Accuracy,5:P0}  perfect in a row {streak}  {seconds,7:F2} s/step  {Elapsed(),8:F0} s  at most {left / 60,6:F1} min left"));
            }

            if (checkpoint is not null && lastSave.Elapsed.TotalSeconds >= saveEverySeconds)
            {
                Save(checkpoint, adam, done, streak, Elapsed());
                lastSave.Restart();
            }
        }

        if (checkpoint is not null)
        {
            Save(checkpoint, adam, done, streak, Elapsed());
        }

        double total = Elapsed();
        return string.Create(CultureInfo.InvariantCulture,
            $"{name,-20} {length,9} {(Solved() ? "converged" : "not converged"),-14} {done,6} {total,14:F1} {total / Math.Max(1, done),8:F3}");
    }

    /// <summary>
    /// Minibatch <paramref name="index"/>'s seed: a fixed mix (SplitMix64's finaliser) of the run's seed and the index, the
    /// same in every process (HashCode.Combine is seeded per process, so a resumed run would have drawn other batches).
    /// </summary>
    internal static int BatchSeed(int seed, int index)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    private void Save(string path, Adam<float> adam, int done, int streak, double seconds)
    {
        var tensors = new Dictionary<string, TensorData>();
        for (int k = 0; k < parameters.Names.Count; k++)
        {
            string key = parameters.Names[k];
            int[] shape = [.. parameters.Shape(key)];
            tensors[key] = TensorData.FromSingle((float[])parameters.Arrays[k].Clone(), shape);
            tensors["adam.m." + key] = TensorData.FromSingle((float[])adam.FirstMoments[k].Clone(), shape);
            tensors["adam.v." + key] = TensorData.FromSingle((float[])adam.SecondMoments[k].Clone(), shape);
        }

        var metadata = new Dictionary<string, string>
        {
            ["model"] = name,
            ["length"] = length.ToString(CultureInfo.InvariantCulture),
            ["steps"] = done.ToString(CultureInfo.InvariantCulture),
            ["adam_steps"] = adam.Steps.ToString(CultureInfo.InvariantCulture),
            ["streak"] = streak.ToString(CultureInfo.InvariantCulture),
            ["seconds"] = seconds.ToString("R", CultureInfo.InvariantCulture),
        };
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        string temporary = path + ".tmp";
        SafetensorsFile.Write(temporary, tensors, metadata);
        File.Move(temporary, path, overwrite: true);
    }

    private (int Done, int Streak, double Seconds) Load(string path, Adam<float> adam)
    {
        SafetensorsFile file = SafetensorsFile.Read(path);
        string Meta(string key) => file.Metadata.TryGetValue(key, out string? v)
            ? v : throw new InvalidDataException($"{path}: the checkpoint has no '{key}' metadata.");
        if (Meta("model") != name || Meta("length") != length.ToString(CultureInfo.InvariantCulture))
        {
            throw new InvalidDataException($"{path} is a checkpoint of {Meta("model")} at T = {Meta("length")}, not {name} at T = {length}.");
        }

        var m = new List<float[]>();
        var v = new List<float[]>();
        foreach (string key in parameters.Names)
        {
            float[] values = file.Get(key).ToArray<float>();
            Require(values.Length == parameters[key].Length, $"{path}: '{key}' holds {values.Length} values; the model's holds {parameters[key].Length}.");
            values.CopyTo(parameters[key], 0);
            m.Add(file.Get("adam.m." + key).ToArray<float>());
            v.Add(file.Get("adam.v." + key).ToArray<float>());
        }

        adam.Restore(int.Parse(Meta("adam_steps"), CultureInfo.InvariantCulture), m, v);
        return (int.Parse(Meta("steps"), CultureInfo.InvariantCulture), int.Parse(Meta("streak"), CultureInfo.InvariantCulture),
            double.Parse(Meta("seconds"), CultureInfo.InvariantCulture));
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidDataException(message);
        }
    }
}
